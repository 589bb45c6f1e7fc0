"""Training: the config (:mod:`.config`), the run directory (:mod:`.run_dir`), the one loop (:mod:`.loop`)
and the sinks it writes to (:mod:`.sinks`)."""
