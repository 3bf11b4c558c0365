"""Use cases of the book: each module builds a ground truth, a physics factory and measurements."""
