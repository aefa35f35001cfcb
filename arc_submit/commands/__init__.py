"""The commands of `python -m arc_submit`, one module each: `add_arguments(parser)` and
`main(args) -> exit code`. Thin: they parse flags and call the library in the wings below; heavy
packages are imported inside `main`, so `validate`, `score` and `metrics` start without torch."""
