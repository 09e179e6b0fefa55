# The local fleet for real: apply starts origin, three edges and the geo-router from the
# workspace's binaries (TF_VAR_bin_dir), a segment is fetched through the router, one edge is
# added (only it starts, the router answers with it), and terraform test destroys it all at the
# end; terraform/test.sh then checks that no process and no listener is left.

variables {
  # Under the workspace's target/, as every test's files are (relative to envs/local).
  run_dir = "../../../target/terraform/local-run"
  edges = {
    "us-east-1"      = { region = "us-east", address = "127.0.11.1", store_capacity = "32MiB" }
    "eu-west-1"      = { region = "eu-west", address = "127.0.12.1", store_capacity = "32MiB" }
    "ap-southeast-1" = { region = "ap-southeast", address = "127.0.13.1", store_capacity = "32MiB" }
  }
}

run "up" {
  command = apply

  assert {
    condition     = length(output.edge_ids) == 3
    error_message = "three edges are running"
  }
}

run "a_segment_through_the_router" {
  module {
    source = "./tests/sh"
  }
  variables {
    # A viewer in Boston: the router's 302 goes to us-east-1, which fetches from the origin.
    command = <<-EOT
      got=$(curl -fsSL --max-time 10 -D - -o /dev/null 'http://127.0.10.1:8053/r/vod/big-clock/720p/seg_00001.m4s?client=192.0.2.10')
      echo "$got" | tr -d '\r' | grep -i '^x-served-by: us-east-1;region=us-east$'
      cd ../../../target/terraform/local-run && for f in us-east-1 eu-west-1 ap-southeast-1; do cp "$f.pid" "$f.pid.before"; done
    EOT
  }
}

run "one_more_edge" {
  command = apply

  variables {
    edges = {
      "us-east-1"      = { region = "us-east", address = "127.0.11.1", store_capacity = "32MiB" }
      "us-east-2"      = { region = "us-east", address = "127.0.11.2", store_capacity = "32MiB" }
      "eu-west-1"      = { region = "eu-west", address = "127.0.12.1", store_capacity = "32MiB" }
      "ap-southeast-1" = { region = "ap-southeast", address = "127.0.13.1", store_capacity = "32MiB" }
    }
  }

  assert {
    condition     = length(output.edge_ids) == 4
    error_message = "the new edge runs"
  }
  assert {
    condition     = alltrue([for name, id in run.up.edge_ids : output.edge_ids[name] == id])
    error_message = "no other edge was replaced (restarted)"
  }
}

run "the_router_sends_viewers_to_it" {
  module {
    source = "./tests/sh"
  }
  variables {
    command = <<-EOT
      cd ../../../target/terraform/local-run
      # The first three are the very processes started before.
      for f in us-east-1 eu-west-1 ap-southeast-1; do
        cmp "$f.pid" "$f.pid.before"
        kill -0 "$(cat "$f.pid")"
      done
      # The router re-read the topology (SIGHUP): DNS for a Boston viewer (ECS) names the new
      # edge, and it serves through its own address.
      kdig @127.0.10.1 -p 5353 video.meridian.test A +subnet=192.0.2.0/24 +short +timeout=2 | tee dns.txt
      grep -x '127.0.11.2' dns.txt
      curl -fsS --max-time 10 -D - -o /dev/null http://127.0.11.2:8080/vod/big-clock/720p/seg_00002.m4s | tr -d '\r' | grep -i '^x-served-by: us-east-2;region=us-east$'
    EOT
  }
}
