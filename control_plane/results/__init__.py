"""What agents report back: scan results, chunked or whole, and the end of each job."""
