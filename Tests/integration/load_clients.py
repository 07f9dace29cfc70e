"""Continuous load for the several-machines tests and benchmark: CLIENTS threads POSTing to a model
through a balancer, half on keep-alive connections and half on a new connection per request, every
request recorded (wall-clock start, latency, outcome).  Runs inside the balancer's namespace.

    python3 load_clients.py URL --clients 8 --until-file STOP --out results.json
"""
import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse


def client(index, url, keep_alive, stop, records, timeout):
    u = urllib.parse.urlsplit(url)
    conn = None
    n = 0
    while not stop():
        n += 1
        rid = f"c{index}-{n}"
        body = json.dumps({"recordid": rid, "cal_number": n}).encode()
        headers = {"Content-Type": "application/json"}
        if not keep_alive:
            headers["Connection"] = "close"
        start = time.time()
        t0 = time.monotonic()
        outcome = "ok"
        try:
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
            conn.request("POST", u.path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                outcome = f"status {r.status}"
            elif json.loads(data).get("recordid") != rid:
                outcome = "wrong recordid"
            if not keep_alive or r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # every failure is counted, never retried
            outcome = type(e).__name__
            if conn is not None:
                conn.close()
            conn = None
        records.append((start, time.monotonic() - t0, outcome, keep_alive, rid))
    if conn is not None:
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--until-file", required=True, help="load stops once this file exists")
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    records = []
    done = threading.Event()
    stop = lambda: done.is_set()
    threads = [threading.Thread(target=client, args=(i, a.url, i % 2 == 0, stop, records, a.timeout), daemon=True)
               for i in range(a.clients)]
    for t in threads:
        t.start()
    while not os.path.exists(a.until_file):
        time.sleep(0.05)
    done.set()
    for t in threads:
        t.join(a.timeout + 5)
    with open(a.out + ".tmp", "w") as f:
        json.dump(records, f)
    os.rename(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
