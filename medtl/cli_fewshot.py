"""The ``medtl fewshot`` command line (docs/meta.md)."""

from __future__ import annotations

import argparse


def _cmd_fewshot(args: argparse.Namespace) -> int:
    from .workflows.fewshot import FewShotOptions, format_summary, run_fewshot

    options = FewShotOptions(ways=args.ways, shots=args.shots, queries=args.queries, episodes=args.episodes,
                             column=args.column, steps=args.steps, finetune_steps=args.finetune_steps,
                             finetune_lr=args.finetune_lr, seed=args.seed, allow_overlap=args.allow_overlap)
    out = args.out or "runs/fewshot"
    summary = run_fewshot(args.target, args.manifest, out, options, args.config, progress=not args.quiet)
    for line in format_summary(summary):
        print(line)
    print(f"scores per episode: {out}/episodes.csv; summary: {out}/fewshot.json")
    return 0


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def add_fewshot_command(commands) -> None:
    """Register ``medtl fewshot`` on the CLI's subcommands."""
    fewshot = commands.add_parser(
        "fewshot", help="score a pretrained encoder on held-out N-way K-shot episodes, beside baselines",
        description="Draw N-way K-shot episodes from a held-out labelled manifest and solve each with every source "
                    "model of a run (or one checkpoint) and with ImageNet weights when cached: by the meta-learner's "
                    "own adaptation, by a linear probe on frozen features, and by fine-tuning for a fixed number of "
                    "steps. Accuracy and AUC per episode, means with 95%% CIs over episodes. See docs/meta.md.")
    fewshot.add_argument("target", metavar="RUN_OR_CHECKPOINT", help="a cv run folder, or a .safetensors checkpoint")
    fewshot.add_argument("manifest", metavar="MANIFEST", help="held-out labelled manifest (CSV)")
    fewshot.add_argument("--ways", type=positive, default=2, help="classes per episode (default 2)")
    fewshot.add_argument("--shots", type=positive, default=5, help="support images per class (default 5)")
    fewshot.add_argument("--queries", type=positive, default=5, help="query images per class (default 5)")
    fewshot.add_argument("--episodes", type=positive, default=50, help="episodes (default 50)")
    fewshot.add_argument("--column", default="label", help="the manifest's label column (default label)")
    fewshot.add_argument("--steps", type=positive, help="inner steps of a meta-learned model (default: its "
                                                        "meta.eval_inner_steps, else meta.inner_steps)")
    fewshot.add_argument("--finetune-steps", type=positive, default=20, help="steps of the fine-tune baseline")
    fewshot.add_argument("--finetune-lr", type=float, default=1e-3, help="Adam learning rate of the fine-tune baseline")
    fewshot.add_argument("--seed", type=int, default=0, help="episode seed")
    fewshot.add_argument("--config", metavar="CONFIG", help="with a checkpoint: the config it was trained with")
    fewshot.add_argument("--allow-overlap", action="store_true",
                         help="score episodes whose images the meta-learning sources trained on (reported)")
    fewshot.add_argument("--out", metavar="DIR", help="output folder (default runs/fewshot)")
    fewshot.add_argument("--quiet", action="store_true", help="no progress bar")
    fewshot.set_defaults(run_command=_cmd_fewshot)
