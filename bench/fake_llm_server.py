"""The fake OpenAI-compatible server of the tests, as a process: `python -m bench.fake_llm_server
PORT DELAY_S`."""

from __future__ import annotations

import asyncio
import sys

from tests.fixtures.fake_llm import FakeLLM


async def main(port: int, delay_s: float) -> None:
    server = FakeLLM(delay_s=delay_s, keep_requests=False)
    await server.start(port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
