# Shared by bench/auth-cost and bench/limit-cost: a scratch folder whose processes are stopped
# on exit, an NGINX origin serving /<route>/100b (100 bytes), and the CPU and median helpers.
# Source it after `set -euo pipefail`.
dir="$(mktemp -d)"; pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
hz=$(getconf CLK_TCK)

# start_origin PORT: NGINX on 127.0.0.1:PORT; /<anything>/100b serves the 100-byte file.
start_origin() {
  mkdir -p "$dir/www" "$dir/tmp"; head -c 100 /dev/zero | tr '\0' 'x' > "$dir/www/100b"
  cat > "$dir/nginx.conf" <<NGX
worker_processes 1; daemon off; master_process off; pid $dir/nginx.pid; error_log $dir/err.log warn;
events { worker_connections 8192; }
http { access_log off; keepalive_timeout 120s; keepalive_requests 10000000;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server { listen 127.0.0.1:$1; root $dir/www; location / { rewrite ^/[a-z]+/(.*)\$ /\$1 break; } } }
NGX
  nginx -c "$dir/nginx.conf" & pids+=($!)
}

# ticks PID: the process's user+system CPU so far, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# cpu_us T0 T1 N: CPU microseconds per request between two ticks() readings.
cpu_us() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$hz" 'BEGIN {printf "%.2f", (b-a)*1e6/hz/n}'; }
# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
