"""The chat format: strict reading, the template and its loss mask, a vocabulary that grows
without changing what the model already computes, and the data maker's held-out split."""

import json
import re

import pytest
import torch

from gpt import GPT, GPTConfig
from gpt.chat.data import addition_with_working, held_out, make_rows, sources
from gpt.chat.format import (
    END,
    Message,
    chat_tokenizer,
    encode_conversation,
    grow_vocabulary,
    masked_targets,
    read_conversations,
    render,
)
from gpt.model import lm_loss
from shared.errors import UsageError
from tokenizers_fromscratch import CharTokenizer

TEXT = "To be, or not to be, that is the question:\nWhether tis nobler in the mind to suffer\n"
CONVERSATION = [Message("system", "Be brief."), Message("user", "2 + 3?"),
                Message("assistant", "5")]  # fmt: skip


def chat_tok():
    return chat_tokenizer(CharTokenizer.train([TEXT]), [CONVERSATION])


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "t.jsonl:2: not valid JSON"),
        ('{"conversations": []}', "t.jsonl:2: expected"),
        ('{"conversations": [{"role": "robot", "content": "hi"}]}', "message 1 needs a role"),
        ('{"conversations": [{"role": "user", "content": 3}]}', "message 1 needs a content"),
        ('{"conversations": [{"role": "user", "content": "hi"}]}', "no assistant message"),
        ('{"conversations": [{"role": "user", "content": "<|end|>"}, '
         '{"role": "assistant", "content": "x"}]}', "contains a chat token"),
    ],
)  # fmt: skip
def test_a_bad_line_is_named_with_its_number(tmp_path, line, says):
    good = json.dumps({"conversations": [{"role": "user", "content": "a"},
                                          {"role": "assistant", "content": "b"}]})  # fmt: skip
    path = tmp_path / "t.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(UsageError, match="t.jsonl:2: ") as error:
        read_conversations(path)
    assert says in str(error.value)


def test_the_template_marks_the_assistant_reply_and_its_end_only():
    tok = chat_tok()
    ids, trained = encode_conversation(tok, CONVERSATION)
    assert tok.decode(ids) == render(CONVERSATION)
    assert (
        render(CONVERSATION)
        == "<|system|>Be brief.<|end|><|user|>2 + 3?<|end|><|assistant|>5<|end|>"
    )
    marked = [tok.id_to_str[i] for i, t in zip(ids, trained, strict=True) if t]
    assert marked == ["5", END]
    assert tok.token_to_id("2") >= CharTokenizer.train([TEXT]).vocab_size  # a digit was added


def test_the_loss_is_the_mean_over_the_assistant_tokens_and_ignores_the_rest():
    tok = chat_tok()
    ids, trained = encode_conversation(tok, CONVERSATION)
    ids_t, trained_t = torch.tensor([ids]), torch.tensor([trained])
    x, y = ids_t[:, :-1], masked_targets(ids_t, trained_t)  # (1, T) each
    torch.manual_seed(0)
    logits = torch.randn(1, x.shape[1], tok.vocab_size, requires_grad=True)
    loss = lm_loss(logits, y)
    by_hand = [-torch.log_softmax(logits[0, t], -1)[y[0, t]] for t in range(y.shape[1])
               if y[0, t] != -100]  # fmt: skip
    assert len(by_hand) == 2  # "5" and <|end|>
    torch.testing.assert_close(loss, torch.stack(by_hand).mean())
    loss.backward()
    masked = y[0] == -100
    assert logits.grad[0, masked].abs().max() == 0  # no gradient from a masked position
    assert logits.grad[0, ~masked].abs().max() > 0
    # Another user or system token as a target changes nothing: those targets are masked.
    y2 = masked_targets(torch.where(trained_t, ids_t, torch.zeros_like(ids_t)), trained_t)
    torch.testing.assert_close(lm_loss(logits, y2), loss)


@pytest.mark.parametrize("tied", [True, False])
def test_growing_the_vocabulary_keeps_every_old_logit(tied):
    torch.manual_seed(0)
    model = GPT(GPTConfig.modern(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=32,
                                 tie_embeddings=tied)).eval()  # fmt: skip
    idx = torch.randint(0, 30, (2, 8))
    before = model(idx)
    assert grow_vocabulary(model, 36, torch.Generator().manual_seed(0)) == 6
    after = model(idx)
    assert after.shape[-1] == 36 and model.config.vocab_size == 36
    torch.testing.assert_close(after[..., :30], before)
    new = model.tok_emb.weight[30:]
    assert not torch.equal(new[0], new[1])  # new tokens start apart
    assert (model.lm_head.weight is model.tok_emb.weight) == tied


def test_held_out_numbers_and_words_never_appear_in_training_conversations():
    text = " ".join(["castle", "meadow", "silver", "forest", "candle", "winter", "garden"] * 3)
    train = make_rows(["add", "reverse"], 400, "train", 0, text)
    test_src = sources(text, "test")
    assert test_src.numbers and all(held_out(str(n)) for n in test_src.numbers)
    for row in train:
        question = row["conversations"][-2]["content"]
        tokens = [w.strip('".?') for w in question.split()]
        assert not any(held_out(w) for w in tokens if w.isdigit())  # the operands
        assert not any(w in test_src.words for w in tokens)


@pytest.mark.parametrize("a,b,says", [
    (478, 356, "8+6=14, 7+5+1=13, 4+3+1=8, so 834"),
    (999, 999, "9+9=18, 9+9+1=19, 9+9+1=19, so 1998"),
    (100, 205, "0+5=5, 0+0=0, 1+2=3, so 305"),
])  # fmt: skip
def test_working_writes_the_column_sums_right_to_left(a, b, says):
    assert addition_with_working(a, b) == says


def test_working_rows_end_in_the_sum_and_never_say_result_only():
    rows = make_rows(["add", "reverse"], 200, "train", 0, TEXT, system_share=1.0, working=True)
    for row in rows:
        system, user, reply = (m["content"] for m in row["conversations"])
        if row["task"] == "add":
            a, b = (int(x) for x in re.findall(r"\d{3}", user))
            assert reply.endswith(f"so {a + b}") and reply.count("=") == 3
            assert system != "Answer with the result only."


def test_packed_and_padded_batches_mark_the_same_kind_of_targets():
    from gpt.chat.sft import SFTTask

    tok = chat_tok()
    example = encode_conversation(tok, CONVERSATION)
    for packing in (False, True):
        task = SFTTask([example] * 20, [example], tok.token_to_id(END), 4, 12, packing)
        x, y = task.train_batch(torch.Generator().manual_seed(0))
        assert x.shape == y.shape and x.shape[0] == 4
        if packing:
            assert x.shape[1] == 12  # windows of --max_length, no padding
        kept = y[y != -100].tolist()
        assert kept and set(kept) <= {tok.token_to_id("5"), tok.token_to_id(END)}
        assert task.count((x, y)) == len(kept)


def test_a_long_chat_drops_its_oldest_turns_and_says_so():
    import io

    from gpt.chat.cli import Chat, ChatConfig

    tok = chat_tok()
    torch.manual_seed(0)
    model = GPT(GPTConfig.modern(vocab_size=tok.vocab_size, block_size=48, n_layer=1, n_head=2,
                                 n_embd=16))  # fmt: skip
    chat = Chat(model, tok, ChatConfig(system="Be brief.", max_new_tokens=4))
    notes = io.StringIO()
    for _ in range(4):
        chat.reply("2 + 3?", None, notes)
    assert "dropped the" in notes.getvalue() and "48-token context window" in notes.getvalue()
    prompt = render(chat.messages()[:-1], generation_prompt=True)
    assert chat.messages()[0].role == "system"  # the system message stays
    assert len(tok.encode(prompt)) + 4 <= 48
