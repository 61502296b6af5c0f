"""`python -m overdrive.services.enhanced_ranking_service --benchmark`: the spec's command for the
ranking benchmark, `benchmarks/ranking.py`. Benchmarks are not part of the installed product: run
it from the root of a source checkout. The ranker is `overdrive.services.ranking`."""

if __name__ == "__main__":
    import sys

    try:
        from benchmarks.ranking import main
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks":
            raise
        sys.exit("benchmarks are not installed with the product: run this from the root of a source checkout")
    sys.exit(main())
