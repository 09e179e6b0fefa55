# Plans modules/fleet and checks the topology and router config it writes; envs/local's test has
# the real router read them.

variables {
  regions = [
    { name = "us-east", latitude = 40.71, longitude = -74.01, neighbours = ["eu-west"] },
    { name = "eu-west", latitude = 51.51, longitude = -0.13 },
  ]
  edges = [
    { name = "us-east-1", region = "us-east", http = "http://192.0.2.1:8080", admin = "http://192.0.2.1:9090", dns = ["192.0.2.1"], capacity = { egress_mbps = 500, connections = 5000 } },
  ]
  topology_path = "/etc/meridian/topology.toml"
  geoip_path    = "/var/lib/meridian/city.mmdb"
  router        = { name = "router-a", peers = ["http://198.51.100.2:8053"], peer_secret = "a test secret, 16+ characters" }
}

run "writes_topology_and_router_config" {
  command = plan

  assert {
    condition     = strcontains(output.topology, "[[edges]]\nname = \"us-east-1\"\nregion = \"us-east\"\nhttp = \"http://192.0.2.1:8080\"\nadmin = \"http://192.0.2.1:9090\"\ndns = [\"192.0.2.1\"]\ncapacity = { egress_mbps = 500, connections = 5000 }\n")
    error_message = "the edge's entry, in the topology format"
  }
  assert {
    condition     = strcontains(output.topology, "name = \"us-east\"\nlatitude = 40.71\nlongitude = -74.01\nneighbours = [\"eu-west\"]\n")
    error_message = "regions with their neighbours"
  }
  assert {
    condition     = strcontains(output.router_config, "topology = \"/etc/meridian/topology.toml\"") && strcontains(output.router_config, "peers = [\"http://198.51.100.2:8053\"]")
    error_message = "the router reads the topology and knows its peers"
  }
  assert {
    condition     = strcontains(output.router_config, "peer_secret = \"a test secret, 16+ characters\"")
    error_message = "routers with peers get the fleet's shared secret"
  }
  assert {
    condition     = output.regions_without_edges == ["eu-west"]
    error_message = "regions nobody serves are reported"
  }
}

run "rejects_an_edge_in_an_unknown_region" {
  command = plan
  variables {
    edges = [
      { name = "sa-east-1", region = "sa-east", http = "http://192.0.2.9:8080", admin = "http://192.0.2.9:9090", dns = ["192.0.2.9"], capacity = { egress_mbps = 500, connections = 5000 } },
    ]
  }
  expect_failures = [var.edges]
}

run "rejects_duplicate_regions" {
  command = plan
  variables {
    regions = [
      { name = "us-east", latitude = 40.71, longitude = -74.01 },
      { name = "us-east", latitude = 41, longitude = -75 },
    ]
    edges = []
  }
  expect_failures = [var.regions]
}

run "rejects_peers_without_a_shared_secret" {
  command = plan
  variables {
    router = { name = "router-a", peers = ["http://198.51.100.2:8053"] }
  }
  expect_failures = [var.router]
}

run "a_router_with_the_admin_token_keeps_a_purge_log" {
  command = plan
  variables {
    router = { name = "router-a", peers = ["http://198.51.100.2:8053"], peer_secret = "a test secret, 16+ characters", admin_token = "fleet-token" }
  }
  assert {
    condition     = strcontains(output.router_config, "admin_token = \"fleet-token\"\npurge_log = \"/var/lib/meridian-geo-router/purges.jsonl\"")
    error_message = "fleet purges need the token and a purge log in the unit's state directory"
  }
}
