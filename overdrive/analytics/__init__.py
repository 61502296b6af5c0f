"""Only the spec's `python -m overdrive.analytics.real_time_signals --test` lives here; user and item
analytics are use cases in `overdrive.services`, the signal processor is in `overdrive.stream`."""
