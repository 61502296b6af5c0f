"""The two towers as torch modules. Both end in an L2-normalised vector of `dim`; a score is the
dot product (cosine). Forward signatures take plain tensors only, so each tower exports to
TorchScript and ONNX as is.

Item tower: [id embedding | mean of metadata-token embeddings | one linear projection per content
modality | presence flags] → MLP → dim. Missing parts are zeros with a 0 flag; training drops the
id and each part at random (id and modality dropout), so a cold item, or one with only metadata,
is an input the tower has been trained on, not an edge case.

User tower: [user id embedding | pooled positive signals | pooled negative signals | pooled signal
types | counts] → MLP → dim. Each signal in the newest-first sequence is an item vector (the item
tower's output) with a signal type, a signed strength, a recency bucket and a rank bucket; pooling
weights are a softmax over type + recency + rank scores + log strength, learned separately for
positive and negative signals, so what a user skipped or hid steers the vector too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from overdrive.models.two_tower.features import N_POSITION, N_RECENCY

_DENSE_POOL_CELLS = 16_000_000  # training batch × distinct items up to which pooling is a dense matmul


class ItemTower(nn.Module):
    def __init__(self, *, n_ids: int, n_tokens: int, modal_dims: list[int], hidden: int, dim: int) -> None:
        super().__init__()
        self.id_emb = nn.Embedding(n_ids, hidden)
        nn.init.normal_(self.id_emb.weight, std=0.01)
        self.tok_emb = nn.Embedding(n_tokens, hidden, padding_idx=0)
        nn.init.normal_(self.tok_emb.weight, std=0.1)
        with torch.no_grad():
            self.tok_emb.weight[0].zero_()
        self.proj = nn.ModuleList([nn.Linear(d, hidden) for d in modal_dims])
        n_parts = 2 + len(modal_dims)
        self.mlp = nn.Sequential(
            nn.Linear(n_parts * hidden + n_parts, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, dim)
        )

    def forward(self, ids: torch.Tensor, tokens: torch.Tensor, token_w: torch.Tensor, mask: torch.Tensor,
                modal: list[torch.Tensor]) -> torch.Tensor:
        has_id = (ids > 0).to(torch.float32).unsqueeze(1)
        parts = [self.id_emb(ids) * has_id, (self.tok_emb(tokens) * token_w.unsqueeze(2)).sum(dim=1) * mask[:, :1]]
        for k, proj in enumerate(self.proj):
            parts.append(proj(modal[k]) * mask[:, k + 1 : k + 2])
        x = torch.cat([*parts, has_id, mask], dim=1)
        return F.normalize(self.mlp(x), dim=1)


class ItemTowerExport(nn.Module):
    """The item tower with the modalities as positional inputs (TorchScript/ONNX-friendly)."""

    def __init__(self, tower: ItemTower) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, ids, tokens, token_w, mask, *modal):  # type: ignore[no-untyped-def]
        return self.tower(ids, tokens, token_w, mask, list(modal))


class UserTower(nn.Module):
    def __init__(self, *, n_users: int, n_types: int, hidden: int, dim: int, type_dim: int = 16) -> None:
        super().__init__()
        self.id_emb = nn.Embedding(n_users, hidden)
        nn.init.normal_(self.id_emb.weight, std=0.01)
        # Pooling scores, one table per sign: [positive, negative].
        self.type_score = nn.Embedding(n_types, 2)
        self.recency_score = nn.Embedding(N_RECENCY, 2)
        self.position_score = nn.Embedding(N_POSITION, 2)
        for table in (self.type_score, self.recency_score, self.position_score):
            nn.init.zeros_(table.weight)
        self.type_emb = nn.Embedding(n_types, type_dim)
        self.mlp = nn.Sequential(
            nn.Linear(hidden + 1 + 2 * dim + type_dim + 2, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, dim)
        )
        # A linear path from the pooled sequence straight to the output, starting as "the mean
        # of what the user liked minus half the mean of what they rejected": a user with three
        # signals and no id is placed among those items from the first step of training.
        self.skip = nn.Linear(2 * dim, dim, bias=False)
        with torch.no_grad():
            self.skip.weight.copy_(torch.cat([torch.eye(dim), -0.5 * torch.eye(dim)], dim=1))

    def forward(self, users: torch.Tensor, seq_vec: torch.Tensor, seq_type: torch.Tensor, seq_rec: torch.Tensor,
                seq_pos: torch.Tensor, seq_w: torch.Tensor, seq_sign: torch.Tensor) -> torch.Tensor:
        """users (B,), seq_vec (B, L, dim), seq_type/rec/pos (B, L) int64, seq_w (B, L) = log1p|strength|,
        seq_sign (B, L) in {1, -1, 0 (padding)}. The serving (and exported) path."""
        a_pos, a_neg, pos_mask, neg_mask = self._weights(seq_type, seq_rec, seq_pos, seq_w, seq_sign)
        pooled_pos = torch.bmm(a_pos.unsqueeze(1), seq_vec).squeeze(1)
        pooled_neg = torch.bmm(a_neg.unsqueeze(1), seq_vec).squeeze(1)
        pooled_type = torch.bmm(a_pos.unsqueeze(1), self.type_emb(seq_type)).squeeze(1)
        return self._head(users, pooled_pos, pooled_neg, pooled_type, pos_mask, neg_mask)

    def forward_indexed(self, users: torch.Tensor, table: torch.Tensor, seq_idx: torch.Tensor, seq_type: torch.Tensor,
                        seq_rec: torch.Tensor, seq_pos: torch.Tensor, seq_w: torch.Tensor,
                        seq_sign: torch.Tensor) -> torch.Tensor:
        """The same function with the sequence as rows `seq_idx` (B, L) of `table` (n, dim): the
        training path, which never materialises the (B, L, dim) tensor (embedding_bag pools)."""
        a_pos, a_neg, pos_mask, neg_mask = self._weights(seq_type, seq_rec, seq_pos, seq_w, seq_sign)
        b = seq_idx.shape[0]
        if b * table.shape[0] <= _DENSE_POOL_CELLS:
            # Scatter the weights into a dense (2B, n) matrix and multiply: on CPU several times
            # faster than embedding_bag, whose backward sorts every index.
            both = torch.zeros(2 * b, table.shape[0]).scatter_add(
                1, torch.cat([seq_idx, seq_idx]), torch.cat([a_pos, a_neg]))
            pooled = both @ table
            pooled_pos, pooled_neg = pooled[:b], pooled[b:]
        else:
            pooled_pos = F.embedding_bag(seq_idx, table, per_sample_weights=a_pos, mode="sum")
            pooled_neg = F.embedding_bag(seq_idx, table, per_sample_weights=a_neg, mode="sum")
        types = torch.zeros(b, self.type_emb.num_embeddings).scatter_add(1, seq_type, a_pos)
        pooled_type = types @ self.type_emb.weight
        return self._head(users, pooled_pos, pooled_neg, pooled_type, pos_mask, neg_mask)

    def _weights(self, seq_type, seq_rec, seq_pos, seq_w, seq_sign):  # type: ignore[no-untyped-def]
        base = (_lookup(self.type_score.weight, seq_type) + _lookup(self.recency_score.weight, seq_rec)
                + _lookup(self.position_score.weight, seq_pos))  # (B, L, 2)
        base = base + torch.log(seq_w + 1e-6).unsqueeze(2)
        pos_mask = (seq_sign > 0).to(torch.float32)
        neg_mask = (seq_sign < 0).to(torch.float32)
        return _masked_softmax(base[:, :, 0], pos_mask), _masked_softmax(base[:, :, 1], neg_mask), pos_mask, neg_mask

    def _head(self, users, pooled_pos, pooled_neg, pooled_type, pos_mask, neg_mask):  # type: ignore[no-untyped-def]
        has_id = (users > 0).to(torch.float32).unsqueeze(1)
        counts = torch.stack([torch.log1p(pos_mask.sum(dim=1)), torch.log1p(neg_mask.sum(dim=1))], dim=1) / 4.0
        x = torch.cat([self.id_emb(users) * has_id, has_id, pooled_pos, pooled_neg, pooled_type, counts], dim=1)
        return F.normalize(self.mlp(x) + self.skip(torch.cat([pooled_pos, pooled_neg], dim=1)), dim=1)


def _lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """table[idx] through index_select, whose backward is a plain index_add (an embedding's
    backward sorts every index: slow for the (B, L) lookups of a training batch)."""
    return table.index_select(0, idx.reshape(-1)).reshape(idx.shape[0], idx.shape[1], table.shape[1])


def _masked_softmax(score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the entries where mask is 1; an all-zero mask gives all-zero weights."""
    top = (score - (1.0 - mask) * 1e9).max(dim=1, keepdim=True).values
    e = torch.exp(torch.clamp(score - top, max=0.0)) * mask
    return e / (e.sum(dim=1, keepdim=True) + 1e-9)


class TwoTowerNet(nn.Module):
    def __init__(self, *, n_item_ids: int, n_tokens: int, modal_dims: list[int], n_users: int, n_types: int,
                 hidden: int, dim: int) -> None:
        super().__init__()
        self.item = ItemTower(n_ids=n_item_ids, n_tokens=n_tokens, modal_dims=modal_dims, hidden=hidden, dim=dim)
        self.user = UserTower(n_users=n_users, n_types=n_types, hidden=hidden, dim=dim)
