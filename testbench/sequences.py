"""Sequences the test starts: a reset, then one per device segment."""

from __future__ import annotations

from pyuvm import uvm_sequence, uvm_sequencer

from testbench.transactions import DramImageItem, Item, ResetItem, SegmentItem


class TestbenchError(RuntimeError):
    """A driver could not carry out an item (its message says why)."""


class ItemSequence(uvm_sequence):
    """One item on one sequencer; raises TestbenchError when the driver failed it."""

    def __init__(self, item: Item):
        super().__init__(item.get_name())
        self.item = item

    async def body(self):
        await self.start_item(self.item)
        await self.finish_item(self.item)
        if self.item.error is not None:
            raise TestbenchError(self.item.error)


class ResetSequence(ItemSequence):
    def __init__(self):
        super().__init__(ResetItem("reset"))


class SegmentSequence(uvm_sequence):
    """One device segment (a virtual sequence): its DRAM image on the memory agent, then
    the run on the host agent."""

    def __init__(self, request: dict, memory: uvm_sequencer, host: uvm_sequencer):
        super().__init__("segment")
        self.request = request
        self.memory = memory
        self.host = host

    async def body(self):
        image = DramImageItem("dram_image", self.request["dram_path"], self.request["image"])
        await ItemSequence(image).start(self.memory)
        await ItemSequence(SegmentItem("run", self.request)).start(self.host)
