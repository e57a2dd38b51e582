/*
 * image2.core._coadd: drizzle several images that share one pixel map and one weight map in a
 * single pass, computing each input pixel's overlaps with the output grid once.
 *
 * The arithmetic reproduces, operation by operation and in the same floating-point types,
 * what drizzle 3's compiled kernels do in one pass per image, so each output array is
 * bit-identical to that image drizzled alone: the same input-section scan (the input box
 * mapped to the output frame, clipped to the output window and mapped back), the same
 * corner interpolation, overlap areas and kernel weights, and the same running weighted mean
 * (float products and sums, a double quotient). All images share the weight sequence, so
 * they share one counts array.
 *
 * One call updates only the output rows [row_lo, row_hi): callers may run disjoint row bands
 * on several threads (the GIL is released), and each output pixel still receives its updates
 * in input-pixel order. Fill values are applied by the caller.
 *
 * Images from index first_root on are variances: each pixel's square root (sqrtf, correctly
 * rounded like numpy's float32 sqrt) is drizzled, as jwst drizzles a variance as a standard
 * deviation, so the caller needs no whole-frame array of deviations.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define MAX_IMAGES 16
#define MAX_VERTICES 8

enum kernel { K_SQUARE = 0, K_GAUSSIAN = 1, K_POINT = 2, K_TURBO = 3, K_LANCZOS2 = 4, K_LANCZOS3 = 5 };

static const double TOL_VERTEX = 1.0e-12;
static const double TOL_INVERSE = 0.03;
static const double LANCZOS_STEP = 0.003;
#define TINY_AREA (1.0e3 * DBL_MIN)

typedef struct {
    double x, y;
} point;

typedef struct {
    point v[MAX_VERTICES];
    int n;
} polygon;

typedef struct {
    point a, b;
    double slope, offset_px;
} side;

typedef struct {
    side left[MAX_VERTICES], right[MAX_VERTICES];
    int n_left, n_right, at_left, at_right; /* at_* < 0: the scan is over */
    double bottom, top;
    int xmin, xmax, ymin, ymax;
} scan;

typedef struct {
    /* inputs */
    const float *images[MAX_IMAGES];
    int n_images;
    int first_root; /* images[k] for k >= first_root are drizzled as their square roots */
    const float *weights;
    const double *map; /* (in_ny, in_nx, 2) */
    const unsigned int *dq;
    int in_nx, in_ny;
    int xmin, xmax, ymin, ymax;
    float iscale, ratio, wscale;
    double pixfrac;
    int kernel;
    /* outputs */
    float *outputs[MAX_IMAGES];
    float *counts;
    int *context;
    unsigned int *out_dq;
    int out_nx, out_ny;
    int bit;
    int row_lo, row_hi;
} job;

/* ---- pixel map ------------------------------------------------------------------------------ */

static inline const double *
map_at(const job *p, int i, int j)
{
    return p->map + 2 * ((size_t) j * (size_t) p->in_nx + (size_t) i);
}

static inline int
map_centre(const job *p, int i, int j, double *x, double *y)
{
    const double *m = map_at(p, i, j);
    *x = m[0];
    *y = m[1];
    return isnan(*x) || isnan(*y);
}

/* Bilinear interpolation of the map at (xin, yin), extrapolating from the nearest cell at the edges. */
static int
map_bilinear(const job *p, double xin, double yin, double *xout, double *yout)
{
    int i0 = (int) xin, j0 = (int) yin;
    int ilast = p->in_nx - 2, jlast = p->in_ny - 2;
    double fx, fy, gx, gy;
    const double *m00, *m10, *m01, *m11;

    if (i0 < 0) {
        i0 = 0;
    } else if (i0 > ilast) {
        i0 = ilast;
    }
    if (j0 < 0) {
        j0 = 0;
    } else if (j0 > jlast) {
        j0 = jlast;
    }
    fx = xin - i0;
    fy = yin - j0;
    gx = 1.0 - fx;
    gy = 1.0 - fy;
    m00 = map_at(p, i0, j0);
    m10 = map_at(p, i0 + 1, j0);
    m01 = map_at(p, i0, j0 + 1);
    m11 = map_at(p, i0 + 1, j0 + 1);
    *xout = m00[0] * gx * gy + m10[0] * fx * gy + m01[0] * gx * fy + m11[0] * fx * fy;
    *yout = m00[1] * gx * gy + m10[1] * fx * gy + m01[1] * gx * fy + m11[1] * fx * fy;
    return isnan(*xout) || isnan(*yout);
}

/* A point of the input frame in the output frame: the map itself at integral positions inside the box. */
static int
map_point_to_output(const job *p, double xin, double yin, double *xout, double *yout)
{
    int i = (int) xin, j = (int) yin;
    if ((double) i == xin && (double) j == yin) {
        if (i < p->xmin || i > p->xmax || j < p->ymin || j > p->ymax) {
            return 1;
        }
        return map_centre(p, i, j, xout, yout);
    }
    return map_bilinear(p, xin, yin, xout, yout);
}

/* The four corners (clockwise from top-left) of the pixel (i, j) shrunk to half-width h, from its 3x3 neighbourhood. */
static int
map_corners_inside(const job *p, int i, int j, double h, double x[4], double y[4])
{
    double f[3][3], g[3][3], w;
    int a, b;
    for (b = 0; b < 3; ++b) {
        for (a = 0; a < 3; ++a) {
            const double *m = map_at(p, i - 1 + a, j - 1 + b);
            if (a == 1 && b == 1) {
                w = (1 - h) * (1 - h);
            } else if (a == 1 || b == 1) {
                w = (1 - h) * h;
            } else {
                w = h * h;
            }
            f[a][b] = m[0] * w;
            g[a][b] = m[1] * w;
        }
    }
    x[0] = f[0][1] + f[1][1] + f[0][2] + f[1][2];
    y[0] = g[0][1] + g[1][1] + g[0][2] + g[1][2];
    x[1] = f[1][1] + f[2][1] + f[1][2] + f[2][2];
    y[1] = g[1][1] + g[2][1] + g[1][2] + g[2][2];
    x[2] = f[1][0] + f[2][0] + f[1][1] + f[2][1];
    y[2] = g[1][0] + g[2][0] + g[1][1] + g[2][1];
    x[3] = f[0][0] + f[1][0] + f[0][1] + f[1][1];
    y[3] = g[0][0] + g[1][0] + g[0][1] + g[1][1];
    for (a = 0; a < 4; ++a) {
        if (isnan(x[a]) || isnan(y[a])) {
            return 1;
        }
    }
    return 0;
}

/* Squared distance in the output frame between the map at (x, y) and (xref, yref). */
static int
miss_distance(const job *p, double x, double y, double xref, double yref, double *d2)
{
    double xo, yo, dx, dy;
    if (map_bilinear(p, x, y, &xo, &yo)) {
        return 1;
    }
    dx = xo - xref;
    dy = yo - yref;
    *d2 = dx * dx + dy * dy;
    return 0;
}

/* The input position mapped to (xout, yout), by a two-dimensional golden-section search over the box. */
static int
map_point_to_input(const job *p, double xout, double yout, double *xin, double *yin)
{
    const double golden = 0.6180339887498948482;
    double x0 = ((double) p->xmin) - 0.5, x1 = ((double) p->xmax) + 0.5;
    double y0 = ((double) p->ymin) - 0.5, y1 = ((double) p->ymax) + 0.5;
    double dx = x1 - x0, dy = y1 - y0, xa, xb, ya, yb, daa, dab, dba, dbb;
    int steps = 0;

    while ((dx > TOL_INVERSE || dy > TOL_INVERSE) && steps < 50) {
        steps += 1;
        xa = x1 - golden * dx;
        xb = x0 + golden * dx;
        ya = y1 - golden * dy;
        yb = y0 + golden * dy;
        if (miss_distance(p, xa, ya, xout, yout, &daa) || miss_distance(p, xa, yb, xout, yout, &dab) ||
            miss_distance(p, xb, ya, xout, yout, &dba) || miss_distance(p, xb, yb, xout, yout, &dbb)) {
            return 1;
        }
        if (daa < dab && daa < dba && daa < dbb) {
            x1 = xb;
            y1 = yb;
        } else if (dab < daa && dab < dba && dab < dbb) {
            x1 = xb;
            y0 = ya;
        } else if (dba < daa && dba < dab && dba < dbb) {
            x0 = xa;
            y1 = yb;
        } else {
            x0 = xa;
            y0 = ya;
        }
        dx = x1 - x0;
        dy = y1 - y0;
    }
    *xin = 0.5 * (x0 + x1);
    *yin = 0.5 * (y0 + y1);
    return steps == 50;
}

/* ---- polygons ------------------------------------------------------------------------------- */

static inline double
cross(point a, point b)
{
    return a.x * b.y - a.y * b.x;
}

static inline int
near(point a, point b)
{
    return fabs(a.x - b.x) < TOL_VERTEX && fabs(a.y - b.y) < TOL_VERTEX;
}

static void
add_vertex(polygon *poly, point v)
{
    if (poly->n > 0 && (near(poly->v[poly->n - 1], v) || near(poly->v[0], v))) {
        return;
    }
    if (poly->n < MAX_VERTICES) {
        poly->v[poly->n++] = v;
    }
}

static void
make_counterclockwise(polygon *poly)
{
    point centre = {0.0, 0.0}, a, b, keep;
    int k;
    if (poly->n < 3) {
        return;
    }
    for (k = 0; k < poly->n; ++k) {
        centre.x += poly->v[k].x;
        centre.y += poly->v[k].y;
    }
    centre.x /= poly->n;
    centre.y /= poly->n;
    a.x = poly->v[0].x - centre.x;
    a.y = poly->v[0].y - centre.y;
    b.x = poly->v[1].x - centre.x;
    b.y = poly->v[1].y - centre.y;
    if (cross(a, b) >= 0.0) {
        return;
    }
    for (k = 0; k < poly->n / 2; ++k) {
        keep = poly->v[k];
        poly->v[k] = poly->v[poly->n - 1 - k];
        poly->v[poly->n - 1 - k] = keep;
    }
}

/* Drop vertices on the straight line through their neighbours (and those at a vanishing distance). */
static void
drop_collinear(polygon *poly)
{
    polygon kept;
    int k, n = poly->n, prev, next;
    point d_next, d_this;
    if (n < 3) {
        return;
    }
    kept.n = 0;
    for (k = 0; k < n; ++k) {
        prev = (k == 0) ? n - 1 : k - 1;
        next = (k == 0) ? 1 : (k + 1) % n;
        d_next.x = poly->v[next].x - poly->v[prev].x;
        d_next.y = poly->v[next].y - poly->v[prev].y;
        d_this.x = poly->v[k].x - poly->v[prev].x;
        d_this.y = poly->v[k].y - poly->v[prev].y;
        if (fabs(cross(d_next, d_this)) > TINY_AREA &&
            sqrt(d_next.x * d_next.x + d_next.y * d_next.y) > TOL_VERTEX) {
            kept.v[kept.n++] = poly->v[k];
        }
    }
    *poly = kept;
}

/* Whether point q lies strictly left of the directed line through a then b, as drizzle's scanner evaluates it. */
static inline int
left_of(point a, point b, point q)
{
    return (cross(q, a) - cross(b, a) - cross(q, b)) > 0.0;
}

/* Sutherland-Hodgman clipping of a polygon to a convex window; both are first made counter-clockwise. */
static void
clip_to_window(polygon *subject, polygon *window, polygon *result)
{
    polygon buffers[2], *from, *to;
    int k, e, use = 0;
    point w0, w1, dw, s0, s1, ds, crossing;
    double d, c_s, c_w;
    int in0, in1;

    make_counterclockwise(subject);
    make_counterclockwise(window);
    buffers[0] = *subject;
    to = &buffers[0];
    for (e = 0; e < window->n; ++e) {
        w0 = window->v[(e == 0) ? window->n - 1 : e - 1];
        w1 = window->v[e];
        dw.x = w1.x - w0.x;
        dw.y = w1.y - w0.y;
        from = to;
        use = 1 - use;
        to = &buffers[use];
        to->n = 0;
        for (k = 0; k < from->n; ++k) {
            s0 = from->v[(k == 0) ? from->n - 1 : k - 1];
            s1 = from->v[k];
            ds.x = s1.x - s0.x;
            ds.y = s1.y - s0.y;
            in0 = left_of(w0, w1, s0);
            in1 = left_of(w0, w1, s1);
            if (in0 != in1) {
                d = cross(ds, dw);
                c_s = cross(s1, s0);
                c_w = cross(w1, w0);
                crossing.x = (c_s * dw.x - c_w * ds.x) / d;
                crossing.y = (c_s * dw.y - c_w * ds.y) / d;
                if (isfinite(crossing.x) && isfinite(crossing.y)) {
                    add_vertex(to, crossing);
                }
                if (in1) {
                    add_vertex(to, s1);
                }
            } else if (in0) {
                add_vertex(to, s1);
            }
        }
    }
    make_counterclockwise(to);
    drop_collinear(to);
    *result = *to;
}

/* ---- scan of the input section -------------------------------------------------------------- */

static void
set_side(side *s, point a, point b, double position)
{
    double dy = b.y - a.y;
    s->a = a;
    s->b = b;
    s->slope = (b.x - a.x) / dy;
    s->offset_px = (a.x * b.y - a.y * b.x) / dy;
    s->offset_px = s->offset_px - copysign(0.5 + 0.5 * fabs(s->slope), position);
}

static inline int
wrap(int a, int n)
{
    return (a + n) % n;
}

static int
start_scan(const polygon *poly, const job *p, scan *s)
{
    int k, n = poly->n, low_left, low_right, high_left, high_right, a, b;
    double low, high;

    s->n_left = s->n_right = 0;
    s->at_left = s->at_right = -1;
    if (n < 3) {
        return 1;
    }
    low = poly->v[0].y;
    low_left = 0;
    for (k = 1; k < n; ++k) {
        if (poly->v[k].y < low) {
            low_left = k;
            low = poly->v[k].y;
        }
    }
    a = wrap(low_left - 1, n);
    b = wrap(low_left + 1, n);
    low_right = (poly->v[a].y < poly->v[b].y) ? a : b;
    if (poly->v[low_right].y <= low * (1.0 + copysign(TOL_VERTEX, low))) {
        if (poly->v[low_left].x > poly->v[low_right].x) {
            k = low_left;
            low_left = low_right;
            low_right = k;
        }
    } else {
        low_right = low_left;
    }
    high = poly->v[0].y;
    high_right = 0;
    for (k = 1; k < n; ++k) {
        if (poly->v[k].y > high) {
            high_right = k;
            high = poly->v[k].y;
        }
    }
    a = wrap(high_right - 1, n);
    b = wrap(high_right + 1, n);
    high_left = (poly->v[a].y > poly->v[b].y) ? a : b;
    if (poly->v[high_left].y >= high * (1.0 - copysign(TOL_VERTEX, high))) {
        if (poly->v[high_left].x > poly->v[high_right].x) {
            k = high_left;
            high_left = high_right;
            high_right = k;
        }
    } else {
        high_left = high_right;
    }
    if (high_left > low_left) {
        low_left += n;
    }
    s->n_left = low_left - high_left;
    for (k = 0; k < s->n_left; ++k) {
        a = wrap(low_left - k, n);
        set_side(&s->left[k], poly->v[a], poly->v[wrap(a - 1, n)], -1.0);
    }
    if (high_right < low_right) {
        high_right += n;
    }
    s->n_right = high_right - low_right;
    for (k = 0; k < s->n_right; ++k) {
        a = wrap(low_right + k, n);
        set_side(&s->right[k], poly->v[a], poly->v[wrap(a + 1, n)], 1.0);
    }
    s->at_left = 0;
    s->at_right = 0;
    s->bottom = low;
    s->top = high;
    s->xmin = p->xmin;
    s->xmax = p->xmax;
    s->ymin = p->ymin;
    s->ymax = p->ymax;
    return 0;
}

/* The overlap section: the input box mapped out, clipped to the output image, mapped back; its first and last rows. */
static int
section(const job *p, scan *s, int *first, int *last)
{
    polygon box, out_box, window, clipped;
    int k, status;

    box.n = 4;
    box.v[0].x = p->xmin - 0.5;
    box.v[0].y = p->ymin - 0.5;
    box.v[1].x = p->xmax + 0.5;
    box.v[1].y = box.v[0].y;
    box.v[2].x = box.v[1].x;
    box.v[2].y = p->ymax + 0.5;
    box.v[3].x = box.v[0].x;
    box.v[3].y = box.v[2].y;
    for (k = 0; k < 4; ++k) {
        if (map_point_to_output(p, box.v[k].x, box.v[k].y, &out_box.v[k].x, &out_box.v[k].y)) {
            goto scanner;
        }
    }
    out_box.n = 4;
    window.n = 4;
    window.v[0].x = -0.5;
    window.v[0].y = -0.5;
    window.v[1].x = (double) p->out_nx - 0.5;
    window.v[1].y = -0.5;
    window.v[2].x = (double) p->out_nx - 0.5;
    window.v[2].y = (double) p->out_ny - 0.5;
    window.v[3].x = -0.5;
    window.v[3].y = (double) p->out_ny - 0.5;
    clip_to_window(&out_box, &window, &clipped);
    for (k = 0; k < clipped.n; ++k) {
        double xin, yin;
        if (map_point_to_input(p, clipped.v[k].x, clipped.v[k].y, &xin, &yin)) {
            box.n = k; /* drizzle 3 scans the vertices mapped back so far (none: no scan) */
            goto scanner;
        }
        box.v[k].x = xin;
        box.v[k].y = yin;
    }
    box.n = clipped.n;
    make_counterclockwise(&box);
scanner:
    status = start_scan(&box, p, s);
    if (status) {
        return status;
    }
    *first = (int) (s->bottom + 0.5 + 2.0 * TOL_INVERSE);
    if (*first < 0) {
        *first = 0;
    }
    *last = (int) (s->top + 2.0 * TOL_INVERSE);
    if (*last > s->ymax) {
        *last = s->ymax;
    }
    return 0;
}

/* The columns [x1, x2] of input row y inside the section: 0, or 1 (scan over), 2 (row outside), 3 (empty). */
static int
row_limits(scan *s, int y, int *x1, int *x2)
{
    double below = (double) y - 0.5, above = (double) y + 0.5;
    double xlb, xlt, xrb, xrt, edge;

    if (s->ymax >= s->ymin && (y < 0 || y > s->ymax)) {
        return 2;
    }
    if (above <= s->bottom || below >= s->top + 1) {
        return 2;
    }
    if (s->at_left < 0 || s->at_right < 0) {
        return 1;
    }
    while (below > s->left[s->at_left].b.y) {
        if (s->at_left == s->n_left - 1) {
            s->at_left = s->at_right = -1;
            return 1;
        }
        ++s->at_left;
    }
    while (below > s->right[s->at_right].b.y) {
        if (s->at_right == s->n_right - 1) {
            s->at_left = s->at_right = -1;
            return 1;
        }
        ++s->at_right;
    }
    xlb = s->left[s->at_left].slope * y + s->left[s->at_left].offset_px - TOL_INVERSE;
    xrb = s->right[s->at_right].slope * y + s->right[s->at_right].offset_px + TOL_INVERSE;
    edge = s->left[s->at_left].b.y + 0.5 + TOL_INVERSE;
    while (above > edge) {
        if (s->at_left == s->n_left - 1) {
            s->at_left = s->at_right = -1;
            return 1;
        }
        ++s->at_left;
        edge = s->left[s->at_left].b.y + 0.5 + TOL_INVERSE;
    }
    edge = s->right[s->at_right].b.y + 0.5 + TOL_INVERSE;
    while (above > edge) {
        if (s->at_right == s->n_right - 1) {
            s->at_left = s->at_right = -1;
            return 1;
        }
        ++s->at_right;
        edge = s->right[s->at_right].b.y + 0.5 + TOL_INVERSE;
    }
    xlt = s->left[s->at_left].slope * y + s->left[s->at_left].offset_px - TOL_INVERSE;
    xrt = s->right[s->at_right].slope * y + s->right[s->at_right].offset_px + TOL_INVERSE;
    if (s->xmax >= s->xmin) {
        double lo = s->xmin, hi = s->xmax;
        if (xlb < lo) {
            xlb = lo;
        }
        if (xlt < lo) {
            xlt = lo;
        }
        if (xrb > hi) {
            xrb = hi;
        }
        if (xrt > hi) {
            xrt = hi;
        }
    }
    if (xlt >= xrt) {
        *x1 = (int) round(xlb);
        *x2 = (int) round(xrb);
        if (xlb >= xrb) {
            return 3;
        }
    } else if (xlb >= xrb) {
        *x1 = (int) round(xlt);
        *x2 = (int) round(xrt);
    } else {
        *x1 = (int) round(xlb > xlt ? xlb : xlt);
        *x2 = (int) round(xrb < xrt ? xrb : xrt);
    }
    return 0;
}

/* ---- overlaps ------------------------------------------------------------------------------- */

/* Signed area under the segment (x1, y1)-(x2, y2) inside the unit square at the origin. */
static inline double
area_under(double x1, double y1, double x2, double y2)
{
    double dx = x2 - x1, dy = y2 - y1, lo, hi, ylo, yhi, sign, det, top, slope;

    if (dx == 0) {
        return 0.0;
    }
    if (dx < 0) {
        sign = -1.0;
        lo = x2;
        hi = x1;
    } else {
        sign = 1.0;
        lo = x1;
        hi = x2;
    }
    if (lo >= 1.0 || hi <= 0.0) {
        return 0.0;
    }
    lo = lo > 0.0 ? lo : 0.0;
    hi = hi < 1.0 ? hi : 1.0;
    slope = dy / dx;
    ylo = y1 + slope * (lo - x1);
    yhi = y1 + slope * (hi - x1);
    if (ylo <= 0.0 && yhi <= 0.0) {
        return 0.0;
    }
    if (ylo >= 1.0 && yhi >= 1.0) {
        return sign * (hi - lo);
    }
    det = x1 * y2 - y1 * x2;
    if (ylo < 0.0) {
        ylo = 0.0;
        lo = det / dy;
    }
    if (yhi < 0.0) {
        yhi = 0.0;
        hi = det / dy;
    }
    if (ylo <= 1.0) {
        if (yhi <= 1.0) {
            return sign * 0.5 * (hi - lo) * (yhi + ylo);
        }
        top = (dx + det) / dy;
        return sign * (0.5 * (top - lo) * (1.0 + ylo) + hi - top);
    }
    top = (dx + det) / dy;
    return sign * (0.5 * (hi - top) * (1.0 + yhi) + top - lo);
}

/* Signed overlap area of the quadrilateral (x, y) with the output pixel centred on (ii, jj). */
static inline double
quad_overlap(double ii, double jj, const double x[4], const double y[4])
{
    double px[4], py[4], total = 0.0;
    int k;
    ii -= 0.5;
    jj -= 0.5;
    for (k = 0; k < 4; ++k) {
        px[k] = x[k] - ii;
        py[k] = y[k] - jj;
    }
    for (k = 0; k < 4; ++k) {
        total += area_under(px[k], py[k], px[(k + 1) & 3], py[(k + 1) & 3]);
    }
    return total;
}

/* Overlap of the axis-aligned rectangle [x0, x1] x [y0, y1] with the output pixel (ii, jj). */
static inline double
box_overlap(int ii, int jj, double x0, double x1, double y0, double y1)
{
    double hi_x = (double) ii + 0.5, lo_x = (double) ii - 0.5, hi_y = (double) jj + 0.5, lo_y = (double) jj - 0.5;
    double dx = (x1 < hi_x ? x1 : hi_x) - (x0 > lo_x ? x0 : lo_x);
    double dy = (y1 < hi_y ? y1 : hi_y) - (y0 > lo_y ? y0 : lo_y);
    return (dx > 0.0 && dy > 0.0) ? dx * dy : 0.0;
}

/* ---- accumulation --------------------------------------------------------------------------- */

static inline void
accumulate(job *p, int ii, int jj, const float *d, float dow, unsigned int dq)
{
    size_t at = (size_t) jj * (size_t) p->out_nx + (size_t) ii;
    float before, *out;
    double total;
    int k;

    if (p->context && dow > 0.0f) {
        p->context[at] |= p->bit;
    }
    if (dow == 0.0f) {
        return;
    }
    before = p->counts[at];
    total = before + dow;
    if (before == 0.0f) {
        for (k = 0; k < p->n_images; ++k) {
            p->outputs[k][at] = d[k];
        }
        if (p->out_dq) {
            p->out_dq[at] = dq;
        }
    } else {
        for (k = 0; k < p->n_images; ++k) {
            out = p->outputs[k] + at;
            *out = (float) ((*out * before + dow * d[k]) / total);
        }
        if (p->out_dq) {
            p->out_dq[at] |= dq;
        }
    }
    p->counts[at] = (float) total;
}

static inline int
round_half_away(double x)
{
    return (int) round(x);
}

static inline double
min4(const double v[4])
{
    double m = v[0];
    int k;
    for (k = 1; k < 4; ++k) {
        if (v[k] < m) {
            m = v[k];
        }
    }
    return m;
}

static inline double
max4(const double v[4])
{
    double m = v[0];
    int k;
    for (k = 1; k < 4; ++k) {
        if (v[k] > m) {
            m = v[k];
        }
    }
    return m;
}

/* Clamp a band of output rows to this call's rows; false when it is empty. */
static inline int
own_rows(const job *p, int *lo, int *hi)
{
    if (*lo < p->row_lo) {
        *lo = p->row_lo;
    }
    if (*hi > p->row_hi - 1) {
        *hi = p->row_hi - 1;
    }
    return *lo <= *hi;
}

static void
pixel_values(const job *p, int i, int j, float d[MAX_IMAGES], unsigned int *dq)
{
    size_t at = (size_t) j * (size_t) p->in_nx + (size_t) i;
    int k;
    for (k = 0; k < p->n_images; ++k) {
        d[k] = (k < p->first_root ? p->images[k][at] : sqrtf(p->images[k][at])) * p->iscale;
    }
    *dq = p->dq ? p->dq[at] : 0u;
}

static void
square_pixel(job *p, int i, int j, double half)
{
    double x[4], y[4], jaco, w, dover;
    float d[MAX_IMAGES], weight;
    unsigned int dq;
    int ii, jj, ii0, ii1, jj0, jj1, k;

    if (i > 0 && i < p->in_nx - 2 && j > 0 && j < p->in_ny - 2) {
        if (map_corners_inside(p, i, j, half, x, y)) {
            return;
        }
    } else {
        double xs[4] = {(double) i - half, (double) i + half, (double) i + half, (double) i - half};
        double ys[4] = {(double) j + half, (double) j + half, (double) j - half, (double) j - half};
        for (k = 0; k < 4; ++k) {
            if (map_bilinear(p, xs[k], ys[k], x + k, y + k)) {
                return;
            }
        }
    }
    jj0 = round_half_away(min4(y));
    jj1 = round_half_away(max4(y));
    if (jj0 < 0) {
        jj0 = 0;
    }
    if (jj1 > p->out_ny - 1) {
        jj1 = p->out_ny - 1;
    }
    if (!own_rows(p, &jj0, &jj1)) {
        return;
    }
    jaco = 0.5 * ((x[1] - x[3]) * (y[0] - y[2]) - (x[0] - x[2]) * (y[1] - y[3]));
    pixel_values(p, i, j, d, &dq);
    weight = p->weights[(size_t) j * (size_t) p->in_nx + (size_t) i] * p->wscale;
    w = weight / jaco;
    ii0 = round_half_away(min4(x));
    ii1 = round_half_away(max4(x));
    if (ii0 < 0) {
        ii0 = 0;
    }
    if (ii1 > p->out_nx - 1) {
        ii1 = p->out_nx - 1;
    }
    for (jj = jj0; jj <= jj1; ++jj) {
        for (ii = ii0; ii <= ii1; ++ii) {
            dover = quad_overlap((double) ii, (double) jj, x, y);
            if (dover != 0.0) {
                accumulate(p, ii, jj, d, (float) (dover * w), dq);
            }
        }
    }
}

static void
point_pixel(job *p, int i, int j)
{
    double ox, oy;
    float d[MAX_IMAGES], dow;
    unsigned int dq;
    int ii, jj;

    if (map_centre(p, i, j, &ox, &oy)) {
        return;
    }
    ii = round_half_away(ox);
    jj = round_half_away(oy);
    if (ii < 0 || ii >= p->out_nx || jj < 0 || jj >= p->out_ny || jj < p->row_lo || jj >= p->row_hi) {
        return;
    }
    pixel_values(p, i, j, d, &dq);
    dow = p->weights[(size_t) j * (size_t) p->in_nx + (size_t) i] * p->wscale;
    accumulate(p, ii, jj, d, dow, dq);
}

typedef struct {
    double reach, efac, es, scale, sdp;
    const double *lut;
    size_t nlut;
} shape_kernel;

static void
spread_pixel(job *p, int i, int j, const shape_kernel *k)
{
    double ox, oy, w, dover;
    float d[MAX_IMAGES], weight;
    unsigned int dq;
    int ii, jj, ii0, ii1, jj0, jj1;

    if (map_centre(p, i, j, &ox, &oy)) {
        return;
    }
    if (p->kernel == K_LANCZOS2 || p->kernel == K_LANCZOS3) {
        ii0 = (int) floor(ox - k->reach) + 1;
        ii1 = (int) floor(ox + k->reach);
        jj0 = (int) floor(oy - k->reach) + 1;
        jj1 = (int) floor(oy + k->reach);
    } else {
        ii0 = round_half_away(ox - k->reach);
        ii1 = round_half_away(ox + k->reach);
        jj0 = round_half_away(oy - k->reach);
        jj1 = round_half_away(oy + k->reach);
    }
    ii0 = ii0 > 0 ? ii0 : 0;
    ii1 = ii1 < p->out_nx - 1 ? ii1 : p->out_nx - 1;
    jj0 = jj0 > 0 ? jj0 : 0;
    jj1 = jj1 < p->out_ny - 1 ? jj1 : p->out_ny - 1;
    if (!own_rows(p, &jj0, &jj1)) {
        return;
    }
    pixel_values(p, i, j, d, &dq);
    weight = p->weights[(size_t) j * (size_t) p->in_nx + (size_t) i] * p->wscale;
    w = weight;
    for (jj = jj0; jj <= jj1; ++jj) {
        double ddy = oy - (double) jj;
        for (ii = ii0; ii <= ii1; ++ii) {
            if (p->kernel == K_GAUSSIAN) {
                double ddx = ox - (double) ii;
                dover = k->es * exp(-(ddx * ddx + ddy * ddy) * k->efac);
                accumulate(p, ii, jj, d, (float) (dover * w), dq);
            } else if (p->kernel == K_TURBO) {
                dover = box_overlap(ii, jj, ox - k->reach, ox + k->reach, oy - k->reach, oy + k->reach);
                if (dover > 0.0) {
                    dover *= k->scale;
                    accumulate(p, ii, jj, d, (float) (dover * w), dq);
                }
            } else {
                size_t ix = (size_t) round_half_away(fabs((ox - (double) ii) * k->sdp));
                size_t iy = (size_t) round_half_away(fabs((oy - (double) jj) * k->sdp));
                if (ix >= k->nlut || iy >= k->nlut) {
                    continue;
                }
                dover = k->lut[ix] * k->lut[iy];
                accumulate(p, ii, jj, d, (float) (dover * w), dq);
            }
        }
    }
}

static int
run(job *p)
{
    scan s;
    shape_kernel k;
    double *lut = NULL, half = 0.5 * p->pixfrac;
    int first, last, j, i, x1, x2, status;

    memset(&k, 0, sizeof(k));
    if (p->kernel == K_GAUSSIAN) {
        double ac = 1.0 / (p->pixfrac * p->pixfrac), ratio2 = (double) p->ratio * (double) p->ratio;
        k.reach = 2.5 * p->pixfrac / 2.3548 / (double) p->ratio;
        if (k.reach < 1.2 / (double) p->ratio) {
            k.reach = 1.2 / (double) p->ratio;
        }
        k.efac = (2.3548 * 2.3548) * ratio2 * ac / 2.0;
        k.es = k.efac / M_PI;
    } else if (p->kernel == K_TURBO) {
        double ac = 1.0 / (p->pixfrac * p->pixfrac);
        k.reach = p->pixfrac / p->ratio / 2.0;
        k.scale = ac * (double) p->ratio * (double) p->ratio;
    } else if (p->kernel == K_LANCZOS2 || p->kernel == K_LANCZOS3) {
        int order = p->kernel == K_LANCZOS2 ? 2 : 3;
        size_t n;
        k.nlut = (size_t) ceil(order / LANCZOS_STEP) + 1;
        lut = malloc(k.nlut * sizeof(double));
        if (!lut) {
            return -1;
        }
        lut[0] = 1.0;
        for (n = 1; n < k.nlut; ++n) {
            double x = (double) n * LANCZOS_STEP;
            if (x <= (double) order) {
                double px = M_PI * x, r = px / (double) order;
                lut[n] = sin(px) * sin(r) / (px * r);
            } else {
                lut[n] = 0.0;
            }
        }
        k.lut = lut;
        k.reach = (double) order / (double) p->ratio;
        k.sdp = (double) p->ratio / LANCZOS_STEP;
    }
    status = section(p, &s, &first, &last);
    if (status) {
        free(lut);
        return 0; /* no overlap: nothing is drizzled, as in drizzle */
    }
    for (j = first; j <= last; ++j) {
        status = row_limits(&s, j, &x1, &x2);
        if (status == 1) {
            break;
        }
        if (status != 0) {
            continue;
        }
        for (i = x1; i <= x2; ++i) {
            if (p->kernel == K_SQUARE) {
                square_pixel(p, i, j, half);
            } else if (p->kernel == K_POINT) {
                point_pixel(p, i, j);
            } else {
                spread_pixel(p, i, j, &k);
            }
        }
    }
    free(lut);
    return 0;
}

/* ---- Python interface ----------------------------------------------------------------------- */

typedef struct {
    Py_buffer views[2 * MAX_IMAGES + 6];
    int n;
} views;

static void *
take(views *held, PyObject *object, Py_ssize_t bytes, int writable, const char *name)
{
    Py_buffer *view;
    if (object == Py_None) {
        return NULL;
    }
    view = &held->views[held->n];
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        return NULL;
    }
    held->n++;
    if (view->len != bytes) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, not %zd", name, view->len, bytes);
        return NULL;
    }
    return view->buf;
}

static void
release(views *held)
{
    int k;
    for (k = 0; k < held->n; ++k) {
        PyBuffer_Release(&held->views[k]);
    }
    held->n = 0;
}

static PyObject *
coadd(PyObject *self, PyObject *args)
{
    PyObject *images, *outputs, *weights, *map, *counts, *context, *dq, *out_dq;
    job p;
    views held;
    Py_ssize_t in_pixels, out_pixels, k;
    int status = 0;

    (void) self;
    memset(&p, 0, sizeof(p));
    held.n = 0;
    if (!PyArg_ParseTuple(args, "O!O!OOOOOOiiiiiiiiifffdiiii:coadd", &PyTuple_Type, &images, &PyTuple_Type,
                          &outputs, &weights, &map, &counts, &context, &dq, &out_dq, &p.in_nx, &p.in_ny,
                          &p.out_nx, &p.out_ny, &p.xmin, &p.xmax, &p.ymin, &p.ymax, &p.kernel, &p.iscale,
                          &p.ratio, &p.wscale, &p.pixfrac, &p.bit, &p.row_lo, &p.row_hi, &p.first_root)) {
        return NULL;
    }
    p.n_images = (int) PyTuple_GET_SIZE(images);
    if (p.n_images < 1 || p.n_images > MAX_IMAGES || PyTuple_GET_SIZE(outputs) != p.n_images) {
        PyErr_SetString(PyExc_ValueError, "between 1 and 16 images, and as many outputs");
        return NULL;
    }
    if (p.first_root < 0 || p.first_root > p.n_images) {
        PyErr_SetString(PyExc_ValueError, "first_root must be between 0 and the number of images");
        return NULL;
    }
    if (p.in_nx < 2 || p.in_ny < 2 || p.out_nx < 1 || p.out_ny < 1 || p.kernel < K_SQUARE ||
        p.kernel > K_LANCZOS3 || p.xmin < 0 || p.ymin < 0 || p.xmax >= p.in_nx || p.ymax >= p.in_ny) {
        PyErr_SetString(PyExc_ValueError, "invalid shapes, section or kernel");
        return NULL;
    }
    in_pixels = (Py_ssize_t) p.in_nx * p.in_ny;
    out_pixels = (Py_ssize_t) p.out_nx * p.out_ny;
    for (k = 0; k < p.n_images; ++k) {
        p.images[k] = take(&held, PyTuple_GET_ITEM(images, k), in_pixels * 4, 0, "an image");
        p.outputs[k] = take(&held, PyTuple_GET_ITEM(outputs, k), out_pixels * 4, 1, "an output");
        if (!p.images[k] || !p.outputs[k]) {
            goto fail;
        }
    }
    p.weights = take(&held, weights, in_pixels * 4, 0, "the weights");
    p.map = take(&held, map, in_pixels * 16, 0, "the pixel map");
    p.counts = take(&held, counts, out_pixels * 4, 1, "the counts");
    if (!p.weights || !p.map || !p.counts) {
        goto fail;
    }
    p.context = take(&held, context, out_pixels * 4, 1, "the context");
    p.dq = take(&held, dq, in_pixels * 4, 0, "the DQ");
    p.out_dq = take(&held, out_dq, out_pixels * 4, 1, "the output DQ");
    if (PyErr_Occurred()) {
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    status = run(&p);
    Py_END_ALLOW_THREADS
    release(&held);
    if (status) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
fail:
    release(&held);
    return NULL;
}

static PyObject *
parse_float32(PyObject *self, PyObject *arg)
{
    const char *text;
    char *end;
    float value;
    (void) self;
    if (!(text = PyUnicode_AsUTF8(arg))) {
        return NULL;
    }
    value = strtof(text, &end);
    if (end == text || *end != '\0') {
        PyErr_SetString(PyExc_ValueError, "Illegal fill value");
        return NULL;
    }
    return PyFloat_FromDouble((double) value);
}

static PyMethodDef methods[] = {
    {"coadd", coadd, METH_VARARGS,
     "coadd(images, outputs, weights, pixmap, counts, context, dq, out_dq, in_nx, in_ny, out_nx, out_ny, "
     "xmin, xmax, ymin, ymax, kernel, iscale, pscale_ratio, wtscale, pixfrac, bit, row_lo, row_hi, first_root)\n"
     "Drizzle every image (from index first_root on: its square root) with the shared pixel map and weights "
     "into its output, updating output rows [row_lo, row_hi) only."},
    {"parse_float32", parse_float32, METH_O, "The float32 value of a decimal string, as C's strtof reads it."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_coadd",
                                    "One-pass drizzle of images sharing a pixel map and weights.", -1,
                                    methods};

PyMODINIT_FUNC
PyInit__coadd(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "VERSION", 2) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
