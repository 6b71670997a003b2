"""Side-by-side benchmarks: lover1-plugin's paths vs reference-equivalent paths, measured in one run."""
