"""Meta-learning: N-way K-shot episodes from labelled source sets, and the methods that learn from them
(MAML, first-order MAML, ANIL, prototypical networks; docs/meta.md)."""
