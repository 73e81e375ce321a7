"""Research releases of ward data (issue 25): the de-identification core (``deidentify``), the differential-privacy
aggregates (``dp``) and their budget ledger (``ledger``). Pure pandas / numpy (and OpenDP for the noise); the
lab's CLI and the admin API share them."""
