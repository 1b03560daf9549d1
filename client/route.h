// Routing: turns the layer ranges the servers announce at handshake into the ordered list
// of hops a forward pass takes (embedding -> hop 0 -> hop 1 -> ... -> head), checking that
// every layer of the model is served exactly once and that each range is what the config
// expects. Pure logic, no I/O.
#pragma once

#include <string>
#include <vector>

namespace lw {

// What one server group's primary announced: layers [begin, end).
struct AnnouncedRange {
  size_t group = 0;          // index into ClientConfig::servers
  std::string server;        // name, for messages
  std::string expected;      // the config's "layers" text ("A-B" / "N"), empty = any
  int begin = 0;
  int end = 0;
};

struct Hop {
  size_t group = 0;
  int begin = 0;  // layers [begin, end)
  int end = 0;
};

// "A-B" inclusive (or "N" when one layer) for [begin, end).
std::string layer_range_text(int begin, int end);

// Sorts by begin and checks, in this order:
//   - each range is non-empty and inside [0, n_layers) (LW-CLIENT-003 naming server, range
//     and layer count);
//   - a range equals the server's expected range when one is configured (LW-CLIENT-003
//     naming the server and both ranges);
//   - no two ranges overlap (LW-CLIENT-003 naming both servers and ranges);
//   - the union is [0, n_layers) (LW-CLIENT-002 naming every missing range, e.g.
//     "layers 3-5, 9 are served by no server").
std::vector<Hop> route_build(std::vector<AnnouncedRange> announced, int n_layers);

}  // namespace lw
