"""`cwm repro compare RUN_A RUN_B [--metric M ...] [--rtol R] [--atol A] [--all]`: where two runs diverge.
Exit 0 when every common step agrees within tolerance (default: bitwise), 1 naming the first divergent step
and the metric (or the data) that diverged there."""


def add_parser(subparsers):
    p = subparsers.add_parser("repro", help="reproducibility: compare two runs step by step")
    commands = p.add_subparsers(dest="repro_command", required=True)
    compare = commands.add_parser("compare", help="the first step where two runs' data or metric diverge")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        help="metric to compare, repeatable (default: loss, grad_norm and lr; the table shows the first)",
    )
    compare.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: bitwise)")
    compare.add_argument("--atol", type=float, default=0.0)
    compare.add_argument(
        "--all", action="store_true", help="print every compared step, not just around the first divergence"
    )
    p.set_defaults(run=run)


def run(args):
    from cwm_jax.train.repro_compare import DETERMINISTIC_METRICS, compare_runs

    metrics = args.metrics or DETERMINISTIC_METRICS
    c = compare_runs(args.run_a, args.run_b, metrics, args.rtol, args.atol)
    print(
        f"compared {len(c.steps)} steps ({c.steps[0]}-{c.steps[-1]}) on {', '.join(metrics)}; tolerance "
        f"atol {args.atol:g} + rtol {args.rtol:g} x |B|; max |A-B| {c.max_abs_diff:.3g}, "
        f"max relative {c.max_rel_diff:.3g}"
    )
    for name, steps in (("A", c.only_in_a), ("B", c.only_in_b)):
        if steps:
            print(f"only in {name}: {len(steps)} steps ({steps[0]}-{steps[-1]})")
    shown = c.rows
    if not args.all:
        around = c.first_divergent if c.first_divergent is not None else c.steps[-1]
        shown = [r for r in c.rows if abs(r[0] - around) <= 3]
    print(f"{metrics[0]}:\n{'step':>6s} {'A':>14s} {'B':>14s} {'|A-B|':>10s} {'relative':>10s}")
    for step, a, b, diff, rel, ok in shown:
        print(f"{step:6d} {a:14.8g} {b:14.8g} {diff:10.3g} {rel:10.3g}{'' if ok else '  <- beyond tolerance'}")
    if c.manifest_diff:
        print("manifest differences:\n  " + "\n  ".join(c.manifest_diff))
    if c.first_divergent is not None:
        print(f"DIVERGED at step {c.first_divergent}: {c.reason}")
        return 1
    print("IDENTICAL (bitwise)" if c.bitwise else "AGREE within tolerance")
    return 0
