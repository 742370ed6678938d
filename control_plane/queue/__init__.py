"""The scan queue: claiming scans from the database and asking agents to run them."""
