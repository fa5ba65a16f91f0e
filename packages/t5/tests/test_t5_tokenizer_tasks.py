"""The T5 tokenizer's layout (pad 0, EOS 1, unk 2, sentinels on top), its files, and the tasks'
prefixes and mixing rates."""

import pytest

from shared.errors import UsageError
from t5.span_corruption import merge_spans, span_corruption
from t5.tasks import TASKS, common_prefix, get_task, mixing_rates, task_of
from t5.tokenizer import T5Tokenizer
from tokenizers_fromscratch.spm import SentencePieceTokenizer

TEXTS = [
    "two dogs play in the snow .",
    "a man rides a red bike .",
    "zwei hunde spielen im schnee .",
    "ein mann fährt ein rotes fahrrad .",
    "a gripping , funny film",
] * 20


@pytest.fixture(scope="module")
def tokenizer() -> T5Tokenizer:
    return T5Tokenizer.train(TEXTS, vocab_size=80, num_sentinels=10)


def test_special_ids_and_sentinels_follow_t5(tokenizer):
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2)
    assert tokenizer.base.id_to_token(0) == "<pad>" and tokenizer.base.id_to_token(1) == "</s>"
    V = tokenizer.vocab_size
    assert tokenizer.sentinel(0) == V - 1 and tokenizer.sentinel(9) == V - 10
    assert tokenizer.sentinel_ids == list(range(V - 1, V - 11, -1))
    assert max(tokenizer.encode(" ".join(TEXTS[:5]))) < tokenizer.pieces  # text never a sentinel


def test_encode_decode_round_trip_with_sentinels(tokenizer):
    ids = tokenizer.encode("two dogs <extra_id_0> the snow . <extra_id_3>")
    assert ids[-1] == tokenizer.eos_id
    assert tokenizer.sentinel(0) in ids and tokenizer.sentinel(3) in ids
    assert tokenizer.decode(ids) == "two dogs <extra_id_0> the snow . <extra_id_3>"
    assert tokenizer.encode_batch(["a man"]) == [tokenizer.encode("a man")]
    with pytest.raises(UsageError, match="<extra_id_10> does not exist"):
        tokenizer.sentinel(10)


def test_span_corruption_with_the_tokenizer_merges_back(tokenizer):
    ids = tokenizer.encode("a man rides a red bike . two dogs play in the snow .", eos=False)
    inputs, targets = span_corruption(ids, tokenizer.sentinel_ids, eos_token_id=1)
    text = tokenizer.decode(inputs.tolist())
    assert "<extra_id_0>" in text and tokenizer.decode(targets.tolist()).startswith("<extra_id_0>")
    assert merge_spans(inputs, targets, tokenizer.sentinel_ids, eos_token_id=1) == ids


def test_save_and_load_keep_every_id(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    loaded = T5Tokenizer.load(tmp_path)
    assert loaded.vocab_size == tokenizer.vocab_size
    text = "ein mann <extra_id_2> fahrrad ."
    assert loaded.encode(text) == tokenizer.encode(text)
    with pytest.raises(UsageError, match="holds no T5 tokenizer"):
        T5Tokenizer.load(tmp_path / "elsewhere")


def test_no_sentinels_is_a_clear_error_for_span_corruption():
    plain = T5Tokenizer.train(TEXTS, vocab_size=60, num_sentinels=0)
    with pytest.raises(UsageError, match="span corruption needs sentinel tokens"):
        plain.require_sentinels(3)
    few = T5Tokenizer.train(TEXTS, vocab_size=60, num_sentinels=2)
    with pytest.raises(UsageError, match="may need 3 sentinels"):
        few.require_sentinels(3)


def test_a_tokenizer_with_other_special_ids_is_refused():
    base = SentencePieceTokenizer.train(TEXTS, 40, hard_vocab_limit=False)  # unk 0, <s> 1, </s> 2
    with pytest.raises(UsageError, match="needs <pad>=0, </s>=1, <unk>=2"):
        T5Tokenizer(base, 10)


def test_the_from_scratch_unigram_trainer_gives_the_same_layout():
    tok = T5Tokenizer.train(TEXTS, vocab_size=70, num_sentinels=4, trainer="unigram")
    assert (tok.base.id_to_token(0), tok.base.id_to_token(1), tok.base.id_to_token(2)) == (
        "<pad>",
        "</s>",
        "<unk>",
    )
    ids = tok.encode("two dogs play <extra_id_1>")
    assert tok.decode(ids) == "two dogs play <extra_id_1>" and ids[-1] == 1


def test_tasks_are_told_apart_by_their_prefix():
    tasks = [TASKS["translate_de_en"], TASKS["sst2"]]
    assert task_of("sst2 sentence: a fine film", tasks).name == "sst2"
    assert task_of("translate German to English: Zwei Hunde.", tasks).name == "translate_de_en"
    with pytest.raises(UsageError, match="'summarize:', a task this model was not trained on"):
        task_of("summarize: a long text", tasks)
    with pytest.raises(UsageError, match="unknown task 'cola'"):
        get_task("cola")
    assert common_prefix([("copy: a", "a"), ("copy: b c", "b c")], "x") == "copy:"
    with pytest.raises(UsageError, match="same task prefix"):
        common_prefix([("copy: a", "a"), ("first: b", "b")], "x")


def test_mixing_rates():
    assert mixing_rates([29000, 64000]) == pytest.approx([29 / 93, 64 / 93])
    assert mixing_rates([29000, 64000], cap=30000) == pytest.approx([29 / 59, 30 / 59])
    assert mixing_rates([10, 10], rates=[3, 1]) == pytest.approx([0.75, 0.25])
    with pytest.raises(UsageError, match="--rates gives 1 numbers for 2 tasks"):
        mixing_rates([10, 10], rates=[1])
    with pytest.raises(UsageError, match="positive sum"):
        mixing_rates([10, 10], rates=[0, 0])


def test_train_rows_keeps_a_random_subset_apart_from_the_selection_rows():
    from t5.finetune import split_select
    from t5.tasks import TaskData

    rows = [(f"keyword: row {i}", str(i)) for i in range(100)]
    data = TaskData(get_task("sst2"), rows, [])
    train_all, select = split_select(data, 20, seed=3)
    train_few, select_again = split_select(data, 20, seed=3, train_rows=30)
    assert select_again == select and len(train_all) == 80
    assert train_few == train_all[:30]  # the same random order, cut
    assert not set(train_few) & set(select)
    assert train_few != rows[20:50]  # drawn at random, not the file's first rows


def test_sentence_rows_corrupt_each_sentence_alone(tokenizer):
    """pretrain --rows sentences: a row is one sentence, and its corruption merges back to it."""
    import torch

    from t5.pretrain import PretrainConfig, SpanCorruptionTask, shuffled

    encoded = tokenizer.encode_batch(TEXTS[:5], eos=False)
    rows = shuffled(encoded * 4, seed=0)
    assert sorted(rows) == sorted(encoded * 4)
    cfg = PretrainConfig(rows="sentences", val_rows=2, batch_size=4, num_sentinels=10)
    task = SpanCorruptionTask(cfg, tokenizer, rows)
    some = task.train_rows[:4]
    batch = task.corrupt(some, torch.Generator().manual_seed(0))
    eos = tokenizer.eos_id
    for row, inputs, labels in zip(some, batch["input_ids"], batch["labels"], strict=True):
        inputs = [i for i in inputs.tolist() if i != tokenizer.pad_id]
        targets = [t for t in labels.tolist() if t != -100]
        assert inputs[-1] == eos and targets[-1] == eos  # as fine-tuning's inputs end
        assert merge_spans(inputs, targets, tokenizer.sentinel_ids, eos_token_id=eos) == row
