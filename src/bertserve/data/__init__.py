"""Reading labelled data: dataset folders and files (`datasets`), and the TSV/CSV/JSONL table
reader/writer shared with `bertserve predict` (`table_io`)."""
