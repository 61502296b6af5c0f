"""`python -m overdrive.analytics.real_time_signals --test`: the spec's command for the signal
processor's self-check and load test, `benchmarks/real_time.py`. Benchmarks are not part of the
installed product: run it from the root of a source checkout. The processor is
`overdrive.stream.processor`."""

if __name__ == "__main__":
    import sys

    try:
        from benchmarks.real_time import main
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks":
            raise
        sys.exit("benchmarks are not installed with the product: run this from the root of a source checkout")
    main()
