"""`python -m arc_submit bench ...`: benchmarks of sampling, TTFT, adapter serving, the pipeline and the rule tasks, as ratios (see arc_submit.studies.bench)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from arc_submit.commands.common import warnings_to


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="cpu", help="preset or TOML whose model and backends are measured")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one setting of the config (repeatable)")
    parser.add_argument("--new-tokens", type=int, default=96, help="tokens generated per prompt (sampling part)")
    parser.add_argument("--augmentations", type=int, default=4, help="prompts per task (sampling part)")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps (ttft part, and per pipeline task)")
    parser.add_argument("--pipeline-tasks", type=int, default=4, help="tasks in the pipeline part (0 = skip)")
    parser.add_argument("--rule-tasks", type=int, default=4,
                        help="tasks of the generated rules dataset (flip, transpose, rotate, recolour) run with the "
                             "config's own TTFT steps, as tasks solved (0 = skip)")
    parser.add_argument("--out", help="folder for the pipeline part's run dir and the libraries' warnings "
                                      "(default: a temporary folder)")


def main(args: argparse.Namespace) -> int:
    from arc_submit.config import load_config
    from arc_submit.studies.bench import (
        bench_adapter_serving,
        bench_dfs,
        bench_pipeline,
        bench_push_memory,
        bench_rules,
        bench_sampling,
        bench_scoring,
        bench_ttft,
        sample_prompts,
        setup_session,
    )

    config = load_config(args.config, args.set)
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="arc-submit-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    caught = warnings_to(folder / "library-warnings.log")  # the console keeps the measures only
    session, tasks = setup_session(config)
    results: dict = {"config": args.config, "device": session.device, "dtype": session.dtype,
                     "engine_start_s": session.timings["engine_start_s"]}
    prompts = sample_prompts(session, tasks, args.augmentations)
    results["sampling"] = bench_sampling(session, prompts, args.new_tokens)
    print("sampling:", json.dumps(results["sampling"]), flush=True)
    results["dfs"] = bench_dfs(session, tasks, args.augmentations)
    print("dfs:", json.dumps(results["dfs"]), flush=True)
    results["scoring"] = bench_scoring(session, tasks, args.augmentations, config.voting.scoring_views)
    print("scoring:", json.dumps(results["scoring"]), flush=True)
    results["ttft"] = bench_ttft(session, tasks, args.steps)
    print("ttft:", json.dumps(results["ttft"]), flush=True)
    results["push_memory"] = bench_push_memory(session)
    print("push memory:", json.dumps(results["push_memory"]), flush=True)
    if config.sampling.backend == "vllm":
        results["adapter_serving"] = bench_adapter_serving(session, prompts, args.new_tokens, config.ttft.lora_rank)
        results["adapter_serving"]["merged_tokens_per_s"] = results["sampling"]["ours_tokens_per_s"]
        print("adapter serving:", json.dumps(results["adapter_serving"]), flush=True)
    else:
        session.sampler.close()
    del session
    if args.pipeline_tasks:
        results["pipeline"] = bench_pipeline(args.config, args.set, args.pipeline_tasks, args.steps, str(folder))
        print("pipeline:", json.dumps(results["pipeline"]), flush=True)
    if args.rule_tasks:
        results["rules"] = bench_rules(args.config, args.set, args.rule_tasks, str(folder))
        print("rules:", json.dumps(results["rules"]), flush=True)
    results["library_warnings"] = caught.written
    if caught.written:
        print(f"library warnings: {caught.written}, in {folder / 'library-warnings.log'}", flush=True)
    print(json.dumps(results))
    return 0
