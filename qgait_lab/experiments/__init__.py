"""The applications of the library: the methods' stage recipes, the pipeline that runs them, the
one-command demo, the paper's tables over seeds, result tables, and the export to an integer model."""
