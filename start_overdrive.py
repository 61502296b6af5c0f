"""Start the Overdrive service (same as `python -m overdrive.app`)."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("overdrive.app", run_name="__main__", alter_sys=True)
