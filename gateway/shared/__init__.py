"""What every layer of the gateway may use: it imports no other part of the gateway."""
