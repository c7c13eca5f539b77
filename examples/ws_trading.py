"""Place an order and cancel it over the WebSocket (dev auth; `just up` first).

python examples/ws_trading.py [ws://127.0.0.1:8080/]
"""

import sys

import orjson
import trio
from trio_websocket import open_websocket_url


async def main(url: str) -> None:
    async with open_websocket_url(url) as ws:

        async def call(request_id: int, method: str, params: dict) -> dict:
            await ws.send_message(
                orjson.dumps({"id": request_id, "method": method, "params": params})
            )
            while True:  # stream frames may come between; match the answer by its id
                answer = orjson.loads(await ws.get_message())
                if answer.get("id") == request_id:
                    return answer

        print(await call(1, "AUTH", {"user_id": "1"}))
        order = {"market": "TATA_INR", "side": "buy", "price": "1", "quantity": "1"}
        placed = (await call(2, "order.place", order))["result"]
        print("placed", placed["order_id"], placed["status"])
        cancel = {"market": "TATA_INR", "order_id": placed["order_id"]}
        print("cancelled", (await call(3, "order.cancel", cancel))["result"]["status"])
        print("balances", (await call(4, "balances.get", {}))["result"])


trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/")
