"""Fine-tuning the embedding model and the cross-encoder reranker, and the model registry."""
