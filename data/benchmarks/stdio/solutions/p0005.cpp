#include <iostream>
#include <vector>
long long sort_count(std::vector<long long> &a, int lo, int hi, std::vector<long long> &tmp) {
    if (hi - lo < 2) return 0;
    int mid = (lo + hi) / 2;
    long long total = sort_count(a, lo, mid, tmp) + sort_count(a, mid, hi, tmp);
    int i = lo, j = mid, k = lo;
    while (i < mid || j < hi) {
        if (j >= hi || (i < mid && a[i] <= a[j])) {
            tmp[k++] = a[i++];
        } else {
            total += mid - i;
            tmp[k++] = a[j++];
        }
    }
    for (int t = lo; t < hi; t++) a[t] = tmp[t];
    return total;
}
int main() {
    int n;
    std::cin >> n;
    std::vector<long long> a(n), tmp(n);
    for (auto &v : a) std::cin >> v;
    std::cout << sort_count(a, 0, n, tmp) << "\n";
}
