"""flowlab: run, see, compare and debug the parallel branches of a pipeline step."""
