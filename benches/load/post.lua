-- wrk script: POST the JSON body in $BODY to $PATH_ on every request.
wrk.method = "POST"
wrk.path = os.getenv("PATH_")
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
