"""The warm daemon: a fork server that runs `pytest` from an already-imported project.

Layout, one concern per module (docs/how-it-works.md, "Layout"):
- the client side: session (the daemon's part in one pytest run), client (hand a run to the daemon, ask it
  questions), procstate (the caller's process state a run inherits), spawn (start a daemon), control
  (--daemon-* commands), worker (warm xdist workers), paths (socket folder, key, file names).
- the daemon: __main__ (the daemon process), spec (how a daemon process is started), level0 (pytest warm;
  builds level 1, serves what level 1 cannot), level1 (the project warm), forkserver (the select loop a
  level runs, with the level as its policy), listener (the socket and its hand-over), runs (the run table),
  channel (messages between the levels), status (the status frame), warmup (import what a run would),
  freshness (what a change since the warm-up means), rngstate, replay (import-time warnings), procfs.
- the run: child (one run in a forked child), runtime (which role this interpreter plays), protocol (frames
  and fd passing, shared by all).
"""
