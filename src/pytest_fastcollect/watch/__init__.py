"""Watch mode: `pytest --daemon-watch [args]` runs the selection, then re-runs, on each saved change, the tests
the change can reach, each run a plain `pytest` process that the warm daemon serves (docs/watch.md).

- `changes.py`: which file events count (the ignore rules), and what a batch of changes means for the next
  run (`affected()`: the rules that keep the selection sound, as data).
- `terminal.py`: the keys, read between runs when stdin is a terminal.
- `loop.py`: the loop (`Watch`): watching, debouncing, queueing or interrupting, the status line.
"""
