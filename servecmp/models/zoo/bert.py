"""A BERT-base-sized transformer encoder with a 2-class head, on 128 int64 token ids + mask.

BERT-base geometry (Devlin et al. 2018): 12 layers, hidden 768, 12 heads, FFN 3072, vocabulary
30522, 512 positions; embeddings, encoder and pooler hold 109,482,240 parameters, the head
1,538 more. Attention is written out (MatMul/Softmax) rather than a fused kernel so that the
ONNX graph uses plain ops every converter knows, and every shape but the batch axis is a
constant (SEQ_LEN): with shapes read from the input at run time (``t.reshape(n, s, ...)``),
onnx2tf 1.29.24 loses the sequence axis and fails at the first residual Add (``/layers.0/Add_1``:
"Dimensions must be equal, but are 128 and 768", shapes [?,768,128] and [?,?,768]).
"""

from __future__ import annotations

import math

import torch
from torch import nn

SEQ_LEN = 128
VOCAB = 30522
HIDDEN = 768
LAYERS = 12
HEADS = 12
FFN = 3072
MAX_POSITIONS = 512
TYPE_VOCAB = 2
NUM_LABELS = 2
LN_EPS = 1e-12


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(HIDDEN, HIDDEN)
        self.k = nn.Linear(HIDDEN, HIDDEN)
        self.v = nn.Linear(HIDDEN, HIDDEN)
        self.o = nn.Linear(HIDDEN, HIDDEN)
        self.ln1 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.ff1 = nn.Linear(HIDDEN, FFN)
        self.ff2 = nn.Linear(FFN, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=LN_EPS)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, SEQ_LEN, HEADS, HIDDEN // HEADS).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) + bias
        ctx = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(-1, SEQ_LEN, HIDDEN)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.ff2(nn.functional.gelu(self.ff1(x))))


class BertBase(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.position = nn.Embedding(MAX_POSITIONS, HIDDEN)
        self.token_type = nn.Embedding(TYPE_VOCAB, HIDDEN)
        self.ln = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.pooler = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, NUM_LABELS)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids) + self.position.weight[:SEQ_LEN] + self.token_type.weight[0]
        x = self.ln(x)
        # masked keys get a large negative score: (n, 1, 1, s) broadcast over heads and queries
        bias = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return self.classifier(pooled)
