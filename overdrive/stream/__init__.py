"""How acknowledged signals travel to the processor: in process, or through Kafka."""

from overdrive.stream.protocols import SignalBus

__all__ = ["SignalBus"]
