"""Mult-VAE: a variational autoencoder over each customer's products, with a multinomial likelihood.

What it computes: an encoder maps a customer's products (a binary row over the n_items
products, L2-normalised, with dropout while fitting) through a tanh layer of `hidden` units to the
mean and log-variance of a `latent`-dimensional Gaussian; a decoder maps a draw from it back through
`hidden` tanh units to one logit per product. Fitting maximises the multinomial log-likelihood of the
bought products under softmax(logits) minus beta x the KL divergence from a standard normal, beta
annealed from 0 to `beta_max` over `anneal_steps` updates (Adam). A score is the decoder's logit at
the encoder's mean for the history: the recommender is inductive, so a session or a customer unknown
at fitting time is scored exactly like a known customer with that history (no refit, no fold-in
approximation), and a known customer with session products is encoded with both.

Reference: Dawen Liang, Rahul G. Krishnan, Matthew D. Hoffman and Tony Jebara, "Variational
Autoencoders for Collaborative Filtering", WWW 2018 (the architecture and the defaults below:
[n_items -> 600 -> 200 -> 600 -> n_items], dropout 0.5, beta capped at 0.2; smaller layers here, see
the config).

Why this model: among the deep recommenders it is the one the literature keeps as the reference
point for top-N ranking from implicit feedback (Dacrema et al., "Are we really making much
progress?", RecSys 2019, found it the one neural model that beat tuned simple baselines), it folds
in any history by one forward pass (sessions are half of what the workbench serves), and it is
small: on the demo (4,333 customers x 3,658 products) it fits in about 30 s on one CPU thread.
Cornac's VAECF (and BiVAECF) hold user factors learned per training user, which cannot score a
session without refitting, and persist by pickling the live model, so this is a small torch
implementation instead. torch only fits: the learned weights are numpy arrays, scoring runs in
numpy (float64, so a customer's scores do not depend on who else is in the batch), and persistence
is the base's arrays.npz plus config.json.

Determinism: the seed drives the initial weights, the order of the batches, dropout and the
reparameterisation noise; torch runs with `threads` threads (0: WORKBENCH_THREADS or the cores),
restored afterwards. Two fits with the same data, seed and threads give the same weights.

>>> import pandas as pd
>>> baskets = {"a": ["mug", "teapot"], "b": ["mug", "teapot"], "c": ["chair", "table"],
...            "d": ["chair", "table"], "e": ["mug"]}
>>> interactions = pd.DataFrame([(u, p) for u, items in baskets.items() for p in items],
...                             columns=["user_id", "product_id"]).assign(weight=1.0)
>>> model = MultVAE(hidden=16, latent=4, epochs=100, dropout=0.0, learning_rate=0.01).fit(interactions)
>>> model.recommend("e", k=1)[0][0], model.recommend(None, k=1, history=["chair"])[0][0]
('teapot', 'table')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.recommenders.base import Reason, Recommender, RecommenderConfig, binary, register

@dataclass
class MultVAEConfig(RecommenderConfig):
    # The paper's 600 and 200 units, batches of 500 and learning rate 0.001 suit ML-20M's 136,677
    # users; on the demo's 4,333 they left the model undertrained after 50 epochs (9 updates an
    # epoch). Smaller layers, batches of 100 and a learning rate of 0.003 scored best of the few
    # configs tried on a validation split (docs/benchmarks.md).
    hidden: int = 200
    latent: int = 64
    dropout: float = 0.5  # of the input products, while fitting
    beta_max: float = 0.2  # the KL term's weight is annealed from 0 up to this
    anneal_steps: int = 20_000  # updates over which beta grows linearly to beta_max
    epochs: int = 30
    batch_size: int = 100
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 7
    # One torch thread: on the busy 2-core machine two threads made an epoch 2-5 times slower (OpenMP
    # threads spinning while other processes run), and one thread fits the same model every time.
    threads: int = 1  # 0: WORKBENCH_THREADS or the cores


@register
class MultVAE(Recommender):
    name = "mult_vae"
    Config = MultVAEConfig
    search_space: ClassVar[dict[str, list]] = {"epochs": [30, 60], "learning_rate": [1e-3, 3e-3],
                                               "hidden": [200, 600]}

    weights: dict[str, np.ndarray]

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        if not 0.0 <= self.config.dropout < 1.0:
            raise ValueError(f"dropout is the share of input products dropped while fitting, from 0 "
                             f"up to (not including) 1, not {self.config.dropout}")

    # --- fitting (torch) --------------------------------------------------------------------

    def _fit(self, frame: pd.DataFrame, catalog: pd.DataFrame | None) -> None:
        import torch

        from recsys.embedding_model import configure_threads

        previous = torch.get_num_threads()
        configure_threads(self.config.threads or None)
        try:
            self.weights = self._train(binary(self.matrix).astype(np.float32))
        finally:
            torch.set_num_threads(previous)
        self._normalised = None

    def _train(self, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
        import torch
        from torch import nn

        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)  # the layers' initial weights
        n_users, n_items = matrix.shape
        # The encoder's first layer is an embedding bag: a sparse row times a dense matrix, without
        # materialising the batch's n_items-wide input.
        encoder_hidden = nn.EmbeddingBag(n_items, config.hidden, mode="sum")
        nn.init.xavier_uniform_(encoder_hidden.weight)
        encoder_bias = nn.Parameter(torch.zeros(config.hidden))
        encoder_latent = nn.Linear(config.hidden, 2 * config.latent)
        decoder_hidden = nn.Linear(config.latent, config.hidden)
        decoder_output = nn.Linear(config.hidden, n_items)
        for layer in (encoder_latent, decoder_hidden, decoder_output):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)
        parameters = [encoder_bias, *encoder_hidden.parameters(), *encoder_latent.parameters(),
                      *decoder_hidden.parameters(), *decoder_output.parameters()]
        optimiser = torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
        indptr = torch.from_numpy(matrix.indptr.astype(np.int64))
        indices = torch.from_numpy(matrix.indices.astype(np.int64))
        step = 0
        for _ in range(config.epochs):
            order = torch.randperm(n_users, generator=generator)
            for start in range(0, n_users, config.batch_size):
                users = order[start:start + config.batch_size]
                lengths = indptr[users + 1] - indptr[users]
                items = torch.cat([indices[indptr[u]:indptr[u + 1]] for u in users.tolist()])
                offsets = torch.cumsum(lengths, 0) - lengths
                # The paper's input: the row L2-normalised, then dropout of products (kept ones
                # rescaled by 1 / keep, as inverted dropout does).
                keep = torch.rand(len(items), generator=generator) >= config.dropout
                values = keep.float() / (1.0 - config.dropout)
                values = values / torch.repeat_interleave(torch.sqrt(lengths.float().clamp(min=1.0)), lengths)
                hidden = torch.tanh(encoder_hidden(items, offsets, per_sample_weights=values) + encoder_bias)
                mean, log_variance = encoder_latent(hidden).chunk(2, dim=1)
                noise = torch.randn(mean.shape, generator=generator)
                latent = mean + noise * torch.exp(0.5 * log_variance)
                logits = decoder_output(torch.tanh(decoder_hidden(latent)))
                log_softmax = torch.log_softmax(logits, dim=1)
                rows = torch.repeat_interleave(torch.arange(len(users)), lengths)
                likelihood = log_softmax[rows, items].sum() / len(users)
                kl = (-0.5 * (1 + log_variance - mean.pow(2) - log_variance.exp()).sum(dim=1)).mean()
                beta = min(config.beta_max, config.beta_max * step / max(config.anneal_steps, 1))
                loss = -likelihood + beta * kl
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                step += 1

        def array(tensor) -> np.ndarray:
            return tensor.detach().numpy().astype(np.float64)

        # (inputs, outputs), the way numpy multiplies them when scoring; nn.Linear keeps the transpose.
        weights = {"encoder_hidden": array(encoder_hidden.weight), "encoder_hidden_bias": array(encoder_bias)}
        for name, layer in (("encoder_latent", encoder_latent), ("decoder_hidden", decoder_hidden),
                            ("decoder_output", decoder_output)):
            weights[name], weights[f"{name}_bias"] = array(layer.weight).T, array(layer.bias)
        return weights

    # --- scoring (numpy) --------------------------------------------------------------------

    def _score(self, user_indices: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """The decoder's logits at the encoder's mean for each (binary, L2-normalised) history."""
        w = self.weights
        rows = binary(histories).astype(np.float64)
        norms = np.sqrt(np.asarray(rows.sum(axis=1)).ravel())
        rows = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ rows
        hidden = np.tanh(np.asarray(rows @ w["encoder_hidden"]) + w["encoder_hidden_bias"])
        mean = (hidden @ w["encoder_latent"] + w["encoder_latent_bias"])[:, :self.config.latent]
        decoded = np.tanh(mean @ w["decoder_hidden"] + w["decoder_hidden_bias"])
        return decoded @ w["decoder_output"] + w["decoder_output_bias"]

    def _item_vectors(self) -> np.ndarray:
        """Each product's unit vector in the decoder's last layer: products a hidden state
        favours together are similar."""
        if getattr(self, "_normalised", None) is None:
            vectors = self.weights["decoder_output"].T
            self._normalised = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return self._normalised

    def _similar(self, item_index: int) -> np.ndarray:
        vectors = self._item_vectors()
        return vectors @ vectors[item_index]

    def _reasons(self, user_index: int, history: np.ndarray, item_index: int) -> list[Reason]:
        contributions = (history > 0) * self._similar(item_index)
        return self._history_reasons(contributions, "similar_taste",
                                     "customers who bought {title} have the same taste")

    # --- persistence: the layers' weights as arrays -----------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(self.weights)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = {name: np.asarray(value, dtype=np.float64) for name, value in arrays.items()}
        self._normalised = None
