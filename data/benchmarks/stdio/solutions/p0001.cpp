#include <iostream>
int main() {
    int n;
    std::cin >> n;
    long long total = 0;
    for (int i = 0; i < n; i++) {
        long long v;
        std::cin >> v;
        if (v % 2 == 0) total += v;
    }
    std::cout << total << "\n";
}
