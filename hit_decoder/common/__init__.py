"""What every job that trains or measures shares, below ``training/`` (stage-1 training) and
``prior/`` (the transformer prior): image data (:mod:`.data`), image metrics (:mod:`.metrics`),
reproducible seeding (:mod:`.seeding`) and Lightning checkpoints written atomically
(:mod:`.checkpointing`). Nothing here imports taming; only :mod:`.checkpointing` imports Lightning.
The run folder itself (resume, overwrite) is :mod:`hit_decoder.runs`."""
