"""seq_models: RNN, LSTM and GRU from torch tensor operations, and a character language model.

    from seq_models import LSTM
    lstm = LSTM(input_size=8, hidden_size=16, num_layers=2, batch_first=True)
    output, (h_n, c_n) = lstm(x)                 # x (B, T, 8): output (B, T, 16), h_n (2, B, 16)
    output, (h_n, c_n) = lstm(x, lengths=lens)   # a padded batch, as torch's packed sequences

Files: `cells.py` (one step of each cell: the equations), `recurrence.py` (running a cell over
a sequence: the naive loop and the fast one), `lstm_bptt.py` (the LSTM with its backward pass
written by hand), `layers.py` (layers, directions, dropout, batch_first, lengths, from_torch),
`charlm.py` (the character language model and its data), `cli.py` (train, sample, eval).
"""

from seq_models.cells import GRUCell, LSTMCell, RNNCell
from seq_models.layers import GRU, LSTM, RNN, RNNBase

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell"]
