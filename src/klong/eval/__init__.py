"""`klong eval`: whole benchmarks (PaperBench, SWE-bench, MLE-bench) run with klong's runtime, graded, and written in
each benchmark's own output format. One seam (`Benchmark`) so that another benchmark is one small file."""
