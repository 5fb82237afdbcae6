// Polygons in level-0 slide pixels: annotation regions (QuPath's GeoJSON), the true regions of a
// synthetic slide, tiles. A polygon is rings of points; a point is inside when a ray from it
// crosses the rings an odd number of times (the even-odd rule), so holes, multipolygons given as
// several polygons, and self-intersecting rings all have a defined inside, never an error.
#pragma once
#include <vector>

namespace histotrain {

struct Point {
  double x = 0, y = 0;
};

struct Polygon {
  std::vector<std::vector<Point>> rings;  // the first the outline, the others holes
};

struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // x0 <= x < x1, y0 <= y < y1
  double area() const { return (x1 - x0) * (y1 - y0); }
  bool empty() const { return !(x1 > x0 && y1 > y0); }
};

bool contains(const Polygon& polygon, double x, double y);

// The box around every ring's points.
Box bounds(const Polygon& polygon);

// The share of `box` inside `polygon`, from an n x n grid of sample points at the centres of
// equal cells (n = 16: steps of 1/256; exact for any region made of whole cells).
double coverage(const Polygon& polygon, const Box& box, int n = 16);

// Area by the shoelace formula, holes subtracted (for rings that do not cross themselves).
double area(const Polygon& polygon);

}  // namespace histotrain
