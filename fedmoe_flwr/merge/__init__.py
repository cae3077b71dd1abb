"""The merge math: staleness, merge rules, gateway merges, update checks (numpy only).

Nothing here imports ``flwr`` or ``torch``: every function is testable in
milliseconds with hand-computed values, and the server never pays for torch.
"""
