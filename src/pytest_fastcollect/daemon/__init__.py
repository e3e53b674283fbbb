"""The warm daemon: a fork server that runs `pytest` from an already-imported project.

Modules, one concern each: runtime (which role this process plays), paths (socket folder, key, file
names), protocol (frames and fd passing), freshness (which warm modules a change makes stale), spawn
(starting a daemon in the background), server (the template process and its serve loop), child (one run
in a forked child), client (a pytest run handing itself to the daemon), control (--daemon-* commands).
"""
