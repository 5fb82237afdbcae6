#include "util/polygon.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace histotrain {

bool contains(const Polygon& polygon, double x, double y) {
  bool inside = false;
  for (const auto& ring : polygon.rings) {
    const size_t n = ring.size();
    for (size_t i = 0, j = n ? n - 1 : 0; i < n; j = i++) {
      const Point& a = ring[i];
      const Point& b = ring[j];
      if ((a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x) inside = !inside;
    }
  }
  return inside;
}

Box bounds(const Polygon& polygon) {
  Box box{std::numeric_limits<double>::max(), std::numeric_limits<double>::max(),
          std::numeric_limits<double>::lowest(), std::numeric_limits<double>::lowest()};
  for (const auto& ring : polygon.rings)
    for (const Point& p : ring) {
      box.x0 = std::min(box.x0, p.x);
      box.y0 = std::min(box.y0, p.y);
      box.x1 = std::max(box.x1, p.x);
      box.y1 = std::max(box.y1, p.y);
    }
  return box.x0 <= box.x1 ? box : Box{};
}

double coverage(const Polygon& polygon, const Box& box, int n) {
  if (box.empty() || n < 1) return 0;
  const Box b = bounds(polygon);
  if (b.x1 <= box.x0 || b.x0 >= box.x1 || b.y1 <= box.y0 || b.y0 >= box.y1) return 0;
  int hits = 0;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i)
      hits += contains(polygon, box.x0 + (i + 0.5) * (box.x1 - box.x0) / n, box.y0 + (j + 0.5) * (box.y1 - box.y0) / n);
  return static_cast<double>(hits) / (n * n);
}

double area(const Polygon& polygon) {
  double total = 0;
  for (size_t r = 0; r < polygon.rings.size(); ++r) {
    const auto& ring = polygon.rings[r];
    double twice = 0;
    for (size_t i = 0, j = ring.empty() ? 0 : ring.size() - 1; i < ring.size(); j = i++)
      twice += ring[j].x * ring[i].y - ring[i].x * ring[j].y;
    total += (r == 0 ? 1 : -1) * std::abs(twice) / 2;
  }
  return std::max(0.0, total);
}

}  // namespace histotrain
