"""Send chat completions to a model endpoint at a steady rate, and print what came back.

For the dev walkthrough: `kubectl -n llm port-forward svc/llama-70b 8000` then
`python scripts/load.py --rate 20 --seconds 600` and watch the autoscaler move replicas between variants.
Bounded in requests and time; standard library only.
"""

import argparse
import json
import threading
import time
import urllib.request
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="meta-llama/Llama-2-70b-chat-hf")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--max-tokens", type=int, default=200)
    args = parser.parse_args()

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    body = json.dumps(
        {"model": args.model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": args.max_tokens}
    ).encode()

    def one() -> None:
        request = urllib.request.Request(
            f"{args.url}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                outcome = str(response.status)
        except urllib.error.HTTPError as error:
            outcome = str(error.code)
        except OSError as error:
            outcome = type(error).__name__
        with lock:
            outcomes[outcome] += 1

    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < args.seconds:
        threading.Thread(target=one, daemon=True).start()
        sent += 1
        time.sleep(max(0.0, started + sent / args.rate - time.monotonic()))
        if sent % max(1, int(args.rate * 10)) == 0:
            print(f"{time.monotonic() - started:6.0f}s sent {sent} {dict(outcomes)}", flush=True)
    print(f"done: sent {sent}, outcomes {dict(outcomes)}")


if __name__ == "__main__":
    main()
