"""The rating engine: tariffs and rates, the money ledger, credit control and CDR rating."""
