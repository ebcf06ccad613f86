"""Sources -> bronze Delta tables: raw reads, naming and typing, quarantine, data-quality checks, the load job."""
