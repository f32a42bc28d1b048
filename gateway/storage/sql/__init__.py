"""The SQL both storage backends share: a dialect, the statements, the record store's methods."""
