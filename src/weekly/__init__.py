"""The weekly job as one command: validate, score, monitor, retrain when due, promote, reload."""
