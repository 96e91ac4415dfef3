"""MultimodalSuite: the task-level API (embed, similarity, classify, moderate)."""
class MultimodalSuite:  # placeholder until suite lands
    pass
