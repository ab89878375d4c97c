"""The tools that run and read this project's experiments: experiment files, run directories, the runner
the study and the benchmarks are defined on, training logs, records, conclusions and figures.

fairseq never imports this package (``--user-dir node_transformer`` is the plugin); importing it imports
neither torch nor fairseq, so a tool that reads a text file starts at once. The modules that need them
(averaging, synthetic, the runner's device check) import them where they are used.
"""
