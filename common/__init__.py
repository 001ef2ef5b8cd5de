"""What every package of s140-trainer shares: the bottom layer, importing none of them.

quiet_tf (TensorFlow without its start-up noise), cli (the one CLI runner and --help),
errors (the user's errors), standardizers (their names and versions), dir_lock (one
writer per directory) and files (atomic, symlink-safe writes).
"""
