#include <algorithm>
#include <iostream>
#include <vector>
int main() {
    int n;
    std::cin >> n;
    std::vector<long long> tails;
    for (int i = 0; i < n; i++) {
        long long v;
        std::cin >> v;
        auto it = std::lower_bound(tails.begin(), tails.end(), v);
        if (it == tails.end()) tails.push_back(v); else *it = v;
    }
    std::cout << tails.size() << "\n";
}
