"""The small corpus and questions the two RAG examples share (topic, passage)."""

CORPUS = [
    ("vllm", "vLLM is a high-throughput inference and serving engine for large language models."),
    ("vllm", "vLLM's pooling runner turns a model into an embedding engine that batches requests itself."),
    ("qdrant", "Qdrant is a vector database that stores embeddings and searches them by similarity."),
    ("qdrant", "Qdrant can run in memory, from a local folder, or as a server reached over HTTP or gRPC."),
    ("milvus", "Milvus Lite keeps a whole vector database in a single local file."),
    ("embeddings", "Matryoshka embeddings stay useful when their trailing dimensions are cut off."),
    ("embeddings", "Instruction-tuned embedding models expect a task description in front of each query."),
    ("baking", "A good sourdough needs flour, water, salt and a lively starter."),
    ("baking", "Let the dough rise overnight in the fridge for a more sour, open crumb."),
    ("cycling", "Check the tyre pressure and oil the chain before a long bicycle ride."),
    ("cycling", "On steep climbs, shift to a lower gear early and keep a steady cadence."),
    ("python", "A Python generator produces values lazily with the yield statement."),
]
QUESTIONS = [
    "Which engine serves language models quickly?",
    "Where can I keep my vectors without running a server?",
    "How do I make bread at home?",
    "What should I do before cycling a long distance?",
    "Why can I shorten some embedding vectors?",
]
