#include <iostream>
#include <map>
#include <string>
int main() {
    std::map<std::string, int> counts;
    std::string word;
    while (std::cin >> word) counts[word]++;
    std::string best;
    int most = 0;
    for (const auto &[w, c] : counts) {
        if (c > most) { most = c; best = w; }
    }
    std::cout << best << " " << most << "\n";
}
