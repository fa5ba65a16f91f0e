"""`t5 eval` and `t5 generate`: read a finished run back and use it.

    eval      every task the run was fine-tuned on, on its report split: BLEU on Multi30k's
              test_2016_flickr (beam search, sacrebleu 13a, cased, detokenized), accuracy on
              SST-2's GLUE dev set; results.json and samples.md written atomically
    generate  one input text -> the model's output text; its prefix must be one the model was
              trained on (a pretrain run takes any text: it fills <extra_id_i> gaps)

The kept checkpoint is `best` (chosen on held-out training rows), else `final`. The length a
run was trained with travels in its config: an input longer than that is refused, not cut.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attention.bleu import bleu_signature
from shared.atomic import write_text_atomic
from shared.checkpoint import read_meta
from shared.device import pick_device
from shared.errors import UsageError
from shared.runs import Run
from t5.generate import cut_at_eos, generate
from t5.predict import encode_inputs, evaluate_task
from t5.tasks import TextTask, get_task, load_task, task_of
from t5.training import load_run_model, pad_rows


@dataclass
class TrainedRun:
    """What a finished run says about itself: its kind, tasks, and the lengths it trained with."""

    kind: str  # "pretrain" or "finetune"
    tasks: list[TextTask]
    max_input_length: int
    max_target_length: int
    data_dir: str | None
    longest_targets: dict[str, int] = field(default_factory=dict)  # task -> tokens, EOS incl.

    def max_new_tokens(self, task: TextTask | None, requested: int = 0) -> int:
        """`requested`, else the task's longest training target, else --max_target_length."""
        if requested:
            return requested
        if task is not None and task.name in self.longest_targets:
            return self.longest_targets[task.name]
        return self.max_target_length


def describe_run(run: Run, checkpoint_meta: dict[str, Any]) -> TrainedRun:
    config = run.config_dict()
    kind = checkpoint_meta.get("kind", "finetune")
    if kind == "pretrain":
        length = int(config.get("chunk_length", 64)) + 1
        return TrainedRun(kind, [], length, length, None)
    data_dir = config.get("data_dir")
    names = checkpoint_meta.get("tasks") or config.get("tasks", [])
    prefixes = checkpoint_meta.get("prefixes") or []
    tasks = []
    for i, name in enumerate(names):
        if name in ("translate_de_en", "sst2") and data_dir is None:
            tasks.append(get_task(name))
        else:  # a --data_dir task: its prefix was saved with the checkpoint
            tasks.append(TextTask(name, prefixes[i] if i < len(prefixes) else f"{name}:",
                                  "accuracy"))  # fmt: skip
    longest = dict(zip(names, checkpoint_meta.get("longest_targets") or [], strict=False))
    return TrainedRun(kind, tasks, int(config.get("max_input_length", 128)),
                      int(config.get("max_target_length", 128)), data_dir, longest)  # fmt: skip


def evaluate_run(run: Run, cfg: Any) -> dict[str, Any]:
    """Score the run on each task's report split; write results.json and samples.md."""
    device = pick_device(cfg.device)
    model, tokenizer, checkpoint = load_run_model(run.folder, device)
    trained = describe_run(run, read_meta(checkpoint))
    if trained.kind == "pretrain":
        raise UsageError(f"{run.folder} is a pretrain run; evaluate a finetune run (its loss "
                         "curve is in metrics.jsonl and loss.png)")  # fmt: skip
    known = {t.name: t for t in trained.tasks}
    names = cfg.tasks or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"--tasks {','.join(unknown)}: this model was not trained on "
                         f"{'it' if len(unknown) == 1 else 'them'}; it knows "
                         f"{', '.join(known)}")  # fmt: skip
    data_dir = None if trained.data_dir is None else Path(trained.data_dir)
    datas = [load_task(n, data_dir) for n in names]
    results: dict[str, Any] = {"run": str(run.folder), "checkpoint": str(checkpoint),
                               "beam_size": cfg.beam_size,
                               "length_penalty": cfg.length_penalty}  # fmt: skip
    samples = ["# Outputs on the report splits (first rows)", ""]
    print(f"run: {run.folder} ({checkpoint.name})")
    for data in datas:
        examples = data.report[: cfg.limit] if cfg.limit else data.report
        metrics, outputs, seconds = evaluate_task(
            model, tokenizer, data.task, examples, trained.max_input_length,
            trained.max_new_tokens(data.task, cfg.max_new_tokens), cfg.beam_size,
            cfg.length_penalty, cfg.batch_size,
        )  # fmt: skip
        results[data.task.name] = {
            **metrics, "rows": len(examples), "split": data.task.report_split,
            "seconds": round(seconds, 1),
        }  # fmt: skip
        shown = ", ".join(f"{k} {v:.4f}" if k != "bleu" else f"BLEU {v:.2f}"
                          for k, v in metrics.items())  # fmt: skip
        print(f"{data.task.name}: {data.task.report_split}, {len(examples)} rows: {shown} "
              f"(beam {cfg.beam_size}, {seconds:.0f}s)")  # fmt: skip
        samples.append(f"## {data.task.name}")
        samples.append("")
        for (source, target), out in list(zip(examples, outputs, strict=True))[:10]:
            samples += [f"- in:  {source}", f"  ref: {target}", f"  out: {out}", ""]
    if any(d.task.metric == "bleu" for d in datas):
        results["bleu_signature"] = bleu_signature()
        print(results["bleu_signature"])
    write_text_atomic(run.folder / "results.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(run.folder / "samples.md", "\n".join(samples))
    print(f"wrote {run.folder / 'results.json'} and samples.md")
    return results


def generate_text(run: Run, cfg: Any) -> str:
    """The model's output for `cfg.text`, greedy, beam search or sampled."""
    device = pick_device(cfg.device)
    model, tokenizer, checkpoint = load_run_model(run.folder, device)
    trained = describe_run(run, read_meta(checkpoint))
    task = None
    if trained.kind != "pretrain":  # one clear line for a prefix it was not trained on
        task = task_of(cfg.text, trained.tasks)
    ids = encode_inputs(tokenizer, [cfg.text], trained.max_input_length)
    input_ids = pad_rows(ids, tokenizer.pad_id).to(device)  # (1, S)
    generator = torch.Generator().manual_seed(cfg.seed) if cfg.sample else None
    out = generate(model, input_ids, trained.max_new_tokens(task, cfg.max_new_tokens),
                   num_beams=1 if cfg.sample else cfg.beam_size,
                   length_penalty=cfg.length_penalty, do_sample=cfg.sample,
                   temperature=cfg.temperature, top_k=cfg.top_k,
                   generator=generator)  # (1, L)  # fmt: skip
    return tokenizer.decode(cut_at_eos(out, tokenizer.eos_id)[0])
